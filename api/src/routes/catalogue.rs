//! Catalogue routes: products and their prices. Staff write; anyone may read a product.
//!
//! A product's stream id is its SKU; its product id is the creating request's command
//! id, so a `POST /products` retried with the same `Idempotency-Key` names the same
//! product. Prices travel as a map from currency to minor units,
//! `{"EUR": 1999, "USD": 2199}`: the currency is the key, so a price cannot disagree
//! with the currency it is filed under.
//!
//! This module also holds the small request checks the staff route modules share (path
//! ids, bounded text, amounts, `ETag`).

use std::collections::BTreeMap;

use aggregates::product::{ChangeDetails, ChangePrice, CreateProduct, Product, ProductCommand};
use aggregates::{Currency, EventSourced, Money, ProductId, Sku};
use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue};
use axum::Json;
use infra::command::CommandError;
use infra::StreamRef;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::input::{etag, invalid_body, path_sku};
use crate::http::command::{CommandMeta, CommandReply, CommandReplyBody};
use crate::http::errors::row;
use crate::http::json::ApiJson;
use crate::http::openapi::{ApiRouter, Operation};
use crate::http::principal::{Role, Staff};
use crate::http::problem::Problem;
use crate::http::AppState;

/// Longest product name, category or brand, in characters.
pub const MAX_NAME: usize = 200;
/// Longest product description, in characters.
pub const MAX_DESCRIPTION: usize = 10_000;
/// Most attributes per product.
pub const MAX_ATTRIBUTES: usize = 50;
/// Longest attribute name, in characters.
pub const MAX_ATTRIBUTE_KEY: usize = 64;
/// Longest attribute value, in characters.
pub const MAX_ATTRIBUTE_VALUE: usize = 500;
/// Most currencies a product is priced in.
pub const MAX_PRICES: usize = 20;
/// Largest amount any staff route accepts, in minor units. Far below `i64::MAX`, so
/// totals of many lines never come near overflow.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000;

const TAG: &str = "catalogue";
const STAFF: &[Role] = &[Role::Staff, Role::Admin];

/// A new catalogue product.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProductBody {
    /// The stock-keeping unit; also the product's stream id.
    pub sku: Sku,
    #[schemars(length(min = 1, max = 200))]
    pub name: String,
    #[serde(default)]
    #[schemars(length(max = 10000))]
    pub description: String,
    /// Category path such as `apparel/t-shirts`; promotions may target it.
    #[serde(default)]
    #[schemars(length(max = 200))]
    pub category: String,
    #[serde(default)]
    #[schemars(length(max = 200))]
    pub brand: String,
    /// Free-form attributes (`{"colour": "red"}`), at most 50.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Price per currency in minor units, e.g. `{"EUR": 1999}`; at least one.
    pub prices: BTreeMap<Currency, i64>,
}

/// New values for a product's descriptive fields; absent fields keep their value.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeDetailsBody {
    #[serde(default)]
    #[schemars(length(min = 1, max = 200))]
    pub name: Option<String>,
    #[serde(default)]
    #[schemars(length(max = 10000))]
    pub description: Option<String>,
    #[serde(default)]
    #[schemars(length(max = 200))]
    pub category: Option<String>,
    #[serde(default)]
    #[schemars(length(max = 200))]
    pub brand: Option<String>,
    /// Replaces the whole attribute map.
    #[serde(default)]
    pub attributes: Option<BTreeMap<String, String>>,
}

/// A price in the currency named by the path.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceBody {
    /// Minor units, e.g. 1999 for 19.99 EUR.
    #[schemars(range(min = 1, max = 1_000_000_000_000i64))]
    pub amount: i64,
}

/// A catalogue product as staff and storefronts see it.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct ProductView {
    pub sku: String,
    pub product_id: Option<ProductId>,
    pub name: String,
    pub description: String,
    pub category: String,
    pub brand: String,
    pub attributes: BTreeMap<String, String>,
    /// Price per currency in minor units.
    pub prices: BTreeMap<Currency, i64>,
    pub discontinued: bool,
    /// The product stream's version (also the `ETag`).
    pub version: i64,
}

/// The catalogue routes.
pub fn router() -> ApiRouter {
    ApiRouter::new()
        .route(
            Operation::post("/products")
                .summary("Create a product")
                .description(
                    "The SKU is the product's stream id; the product id is derived from the \
                     `Idempotency-Key`. Prices are minor units per currency.",
                )
                .tag(TAG)
                .roles(STAFF)
                .command()
                .body::<CreateProductBody>()
                .reply::<CommandReplyBody>(201)
                .problems(&[
                    "product_already_exists",
                    "product_price_not_positive",
                    "product_price_currency_mismatch",
                    "product_no_price",
                    "product_name_empty",
                ]),
            axum::routing::post(create_product),
        )
        .route(
            Operation::get("/products/{sku}")
                .summary("Read a product")
                .description("Public: details, prices and whether it is discontinued.")
                .tag(TAG)
                .path_param("sku", "The product's SKU")
                .reply::<ProductView>(200)
                .problems(&["invalid_id", "not_found"]),
            axum::routing::get(get_product),
        )
        .route(
            Operation::patch("/products/{sku}")
                .summary("Change a product's details")
                .description("Absent fields keep their value; name at least one.")
                .tag(TAG)
                .roles(STAFF)
                .command()
                .path_param("sku", "The product's SKU")
                .body::<ChangeDetailsBody>()
                .reply::<CommandReplyBody>(200)
                .problems(&[
                    "invalid_id",
                    "product_not_found",
                    "product_discontinued",
                    "product_name_empty",
                ]),
            axum::routing::patch(change_details),
        )
        .route(
            Operation::put("/products/{sku}/prices/{currency}")
                .summary("Set a product's price in one currency")
                .tag(TAG)
                .roles(STAFF)
                .command()
                .path_param("sku", "The product's SKU")
                .path_param("currency", "ISO 4217 code, e.g. EUR")
                .body::<PriceBody>()
                .reply::<CommandReplyBody>(200)
                .problems(&[
                    "invalid_id",
                    "invalid_currency",
                    "product_not_found",
                    "product_discontinued",
                    "product_price_not_positive",
                ]),
            axum::routing::put(change_price),
        )
        .route(
            Operation::post("/products/{sku}/discontinue")
                .summary("Discontinue a product")
                .description("It can no longer be priced, added to carts or sold.")
                .tag(TAG)
                .roles(STAFF)
                .command()
                .path_param("sku", "The product's SKU")
                .reply::<CommandReplyBody>(200)
                .problems(&["invalid_id", "product_not_found", "product_discontinued"]),
            axum::routing::post(discontinue),
        )
}

async fn create_product(
    Staff(_): Staff,
    State(state): State<AppState>,
    meta: CommandMeta,
    ApiJson(body): ApiJson<CreateProductBody>,
) -> Result<CommandReply, Problem> {
    check_text("name", &body.name, 1, MAX_NAME)?;
    check_text("description", &body.description, 0, MAX_DESCRIPTION)?;
    check_text("category", &body.category, 0, MAX_NAME)?;
    check_text("brand", &body.brand, 0, MAX_NAME)?;
    check_attributes(&body.attributes)?;
    if body.prices.len() > MAX_PRICES {
        return Err(invalid_body(format!(
            "at most {MAX_PRICES} prices per product"
        )));
    }
    let mut prices = BTreeMap::new();
    for (currency, amount) in &body.prices {
        prices.insert(*currency, amount_in(*amount, *currency)?);
    }
    let ctx = meta.context();
    let command = ProductCommand::CreateProduct(CreateProduct {
        product_id: ProductId::from_uuid(ctx.command_id),
        sku: body.sku.clone(),
        name: body.name,
        description: body.description,
        category: body.category,
        brand: body.brand,
        attributes: body.attributes,
        prices,
        at: state.store.clock().now(),
    });
    let done = state
        .commands
        .execute::<Product>(&ctx, body.sku.as_str(), command)
        .await?;
    Ok(CommandReply::created(&done))
}

async fn change_details(
    Staff(_): Staff,
    State(state): State<AppState>,
    meta: CommandMeta,
    Path(sku): Path<String>,
    ApiJson(body): ApiJson<ChangeDetailsBody>,
) -> Result<CommandReply, Problem> {
    let sku = path_sku(&sku)?;
    if body.name.is_none()
        && body.description.is_none()
        && body.category.is_none()
        && body.brand.is_none()
        && body.attributes.is_none()
    {
        return Err(invalid_body("name at least one field to change"));
    }
    if let Some(name) = &body.name {
        check_text("name", name, 1, MAX_NAME)?;
    }
    if let Some(description) = &body.description {
        check_text("description", description, 0, MAX_DESCRIPTION)?;
    }
    if let Some(category) = &body.category {
        check_text("category", category, 0, MAX_NAME)?;
    }
    if let Some(brand) = &body.brand {
        check_text("brand", brand, 0, MAX_NAME)?;
    }
    if let Some(attributes) = &body.attributes {
        check_attributes(attributes)?;
    }
    // Absent fields keep their current values: the domain's `ChangeDetails` says so.
    let ctx = meta.context();
    let command = ProductCommand::ChangeDetails(ChangeDetails {
        name: body.name,
        description: body.description,
        category: body.category,
        brand: body.brand,
        attributes: body.attributes,
        at: state.store.clock().now(),
    });
    let done = state
        .commands
        .execute::<Product>(&ctx, sku.as_str(), command)
        .await?;
    Ok(CommandReply::ok(&done))
}

async fn change_price(
    Staff(_): Staff,
    State(state): State<AppState>,
    meta: CommandMeta,
    Path((sku, currency)): Path<(String, String)>,
    ApiJson(body): ApiJson<PriceBody>,
) -> Result<CommandReply, Problem> {
    let sku = path_sku(&sku)?;
    let currency = parse_currency(&currency)?;
    let command = ProductCommand::ChangePrice(ChangePrice {
        price: amount_in(body.amount, currency)?,
        at: state.store.clock().now(),
    });
    let done = state
        .commands
        .execute::<Product>(&meta.context(), sku.as_str(), command)
        .await?;
    Ok(CommandReply::ok(&done))
}

async fn discontinue(
    Staff(_): Staff,
    State(state): State<AppState>,
    meta: CommandMeta,
    Path(sku): Path<String>,
) -> Result<CommandReply, Problem> {
    let sku = path_sku(&sku)?;
    let command = ProductCommand::DiscontinueProduct {
        at: state.store.clock().now(),
    };
    let done = state
        .commands
        .execute::<Product>(&meta.context(), sku.as_str(), command)
        .await?;
    Ok(CommandReply::ok(&done))
}

async fn get_product(
    State(state): State<AppState>,
    Path(sku): Path<String>,
) -> Result<([(HeaderName, HeaderValue); 1], Json<ProductView>), Problem> {
    let sku = path_sku(&sku)?;
    match product_view(&state, &sku).await? {
        Some(view) => Ok(([etag(view.version)], Json(view))),
        None => {
            let stream = StreamRef::new(Product::STREAM_TYPE, sku.as_str());
            Err(CommandError::NotFound { stream }.into())
        }
    }
}

/// The product with `sku` as the command layer holds it (cached in this process).
async fn product_view(state: &AppState, sku: &Sku) -> Result<Option<ProductView>, Problem> {
    let Some(loaded) = state.commands.load::<Product>(sku.as_str()).await? else {
        return Ok(None);
    };
    let product = loaded.state;
    Ok(Some(ProductView {
        sku: sku.as_str().to_string(),
        product_id: product.id,
        name: product.name,
        description: product.description,
        category: product.category,
        brand: product.brand,
        attributes: product.attributes,
        prices: product
            .prices
            .into_iter()
            .map(|(currency, price)| (currency, price.amount))
            .collect(),
        discontinued: product.discontinued,
        version: loaded.version,
    }))
}

/// A currency from a path segment: `422 invalid_currency`, like an unknown currency in
/// a body.
pub(super) fn parse_currency(raw: &str) -> Result<Currency, Problem> {
    raw.parse()
        .map_err(|e: aggregates::MoneyError| row::INVALID_CURRENCY.problem(e.to_string()))
}

/// `value` has `min..=max` characters and no control characters.
pub(super) fn check_text(field: &str, value: &str, min: usize, max: usize) -> Result<(), Problem> {
    let len = value.chars().count();
    if len < min || len > max {
        return Err(invalid_body(format!(
            "`{field}` must have {min} to {max} characters, it has {len}"
        )));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(invalid_body(format!(
            "`{field}` must not contain control characters"
        )));
    }
    Ok(())
}

/// `amount` minor units of `currency`, refused when beyond [`MAX_AMOUNT`] either way
/// (zero and negative amounts are left to the domain rules, which name them).
pub(super) fn amount_in(amount: i64, currency: Currency) -> Result<Money, Problem> {
    if amount.unsigned_abs() > MAX_AMOUNT.unsigned_abs() {
        return Err(invalid_body(format!(
            "amounts are limited to {MAX_AMOUNT} minor units"
        )));
    }
    Ok(Money::new(amount, currency))
}

fn check_attributes(attributes: &BTreeMap<String, String>) -> Result<(), Problem> {
    if attributes.len() > MAX_ATTRIBUTES {
        return Err(invalid_body(format!(
            "at most {MAX_ATTRIBUTES} attributes per product"
        )));
    }
    for (key, value) in attributes {
        check_text("attribute name", key, 1, MAX_ATTRIBUTE_KEY)?;
        check_text("attribute value", value, 0, MAX_ATTRIBUTE_VALUE)?;
    }
    Ok(())
}

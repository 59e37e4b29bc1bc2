//! The calling customer's open cart from the `carts` projection (`carts`, `cart_lines`,
//! `cart_coupons`): what a shop's cart badge and cart page show, without loading the
//! cart's stream.

use aggregates::Money;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Serialize;

use super::consistency::{internal, reach, Fresh, ReadAt};
use super::money;
use super::snapshot::in_snapshot;
use crate::http::errors::row;
use crate::http::principal::CustomerOrStaff;
use crate::http::problem::Problem;
use crate::http::AppState;

/// The projection this route reads.
pub const CARTS: &str = "carts";

/// One line of the cart.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CartLineView {
    pub sku: String,
    pub product_name: String,
    pub category: String,
    pub quantity: i64,
    pub unit_price: Money,
    pub line_total: Money,
}

/// A coupon applied to the cart and what it takes off.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CartCouponView {
    pub code: String,
    pub promotion_id: String,
    pub item_discount: Money,
    pub shipping_discount: Money,
}

/// `GET /me/cart`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MyCartBody {
    pub cart_id: String,
    pub currency: String,
    /// Units over all lines.
    pub item_count: i64,
    pub subtotal: Money,
    pub lines: Vec<CartLineView>,
    pub coupons: Vec<CartCouponView>,
    pub shipping_method: Option<String>,
    pub shipping_country: Option<String>,
    /// Absent until a shipping method is chosen.
    pub shipping: Option<Money>,
    pub loyalty_points: i64,
    pub loyalty_value: Money,
    /// Absent until the totals could be computed (an address and a method chosen).
    pub item_discount: Option<Money>,
    pub tax: Option<Money>,
    pub grand_total: Option<Money>,
    pub opened_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct CartRow {
    cart_id: String,
    currency: String,
    item_count: i64,
    subtotal_minor: i64,
    shipping_method: Option<String>,
    shipping_minor: Option<i64>,
    shipping_country: Option<String>,
    loyalty_points: i64,
    loyalty_value_minor: i64,
    item_discount_minor: Option<i64>,
    tax_minor: Option<i64>,
    grand_total_minor: Option<i64>,
    opened_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct LineRow {
    sku: String,
    product_name: String,
    category: String,
    quantity: i64,
    currency: String,
    unit_price_minor: i64,
    line_total_minor: i64,
}

#[derive(sqlx::FromRow)]
struct CouponRow {
    code: String,
    promotion_id: String,
    currency: String,
    item_discount_minor: i64,
    shipping_discount_minor: i64,
}

/// `GET /me/cart`: the customer's open cart (the most recently opened, should there be
/// several); `404 not_found` when none is open.
pub async fn my_cart(
    CustomerOrStaff(principal): CustomerOrStaff,
    State(state): State<AppState>,
    ReadAt(wanted): ReadAt,
) -> Result<Response, Problem> {
    let customer = super::me(&principal)?.to_string();
    let position = reach(&state, CARTS, wanted).await?;
    let read = in_snapshot!(state, tx => {
        let cart: Option<CartRow> = sqlx::query_as(
            "SELECT * FROM carts WHERE customer_id = $1 AND status = 'open' \
             ORDER BY opened_at DESC, cart_id DESC LIMIT 1",
        )
        .bind(&customer)
        .fetch_optional(&mut *tx)
        .await?;
        match cart {
            None => None,
            Some(cart) => {
                let lines: Vec<LineRow> =
                    sqlx::query_as("SELECT * FROM cart_lines WHERE cart_id = $1 ORDER BY sku")
                        .bind(&cart.cart_id)
                        .fetch_all(&mut *tx)
                        .await?;
                let coupons: Vec<CouponRow> =
                    sqlx::query_as("SELECT * FROM cart_coupons WHERE cart_id = $1 ORDER BY code")
                        .bind(&cart.cart_id)
                        .fetch_all(&mut *tx)
                        .await?;
                Some((cart, lines, coupons))
            }
        }
    });
    let Some((c, lines, coupons)) = read.map_err(internal)? else {
        return Err(row::NOT_FOUND.problem("you have no open cart"));
    };
    let m = |amount| money(amount, &c.currency);
    let optional = |amount: Option<i64>| amount.map(m).transpose();
    let body = MyCartBody {
        subtotal: m(c.subtotal_minor)?,
        shipping: optional(c.shipping_minor)?,
        loyalty_value: m(c.loyalty_value_minor)?,
        item_discount: optional(c.item_discount_minor)?,
        tax: optional(c.tax_minor)?,
        grand_total: optional(c.grand_total_minor)?,
        lines: lines
            .into_iter()
            .map(|l| {
                Ok(CartLineView {
                    unit_price: money(l.unit_price_minor, &l.currency)?,
                    line_total: money(l.line_total_minor, &l.currency)?,
                    sku: l.sku,
                    product_name: l.product_name,
                    category: l.category,
                    quantity: l.quantity,
                })
            })
            .collect::<Result<_, Problem>>()?,
        coupons: coupons
            .into_iter()
            .map(|k| {
                Ok(CartCouponView {
                    item_discount: money(k.item_discount_minor, &k.currency)?,
                    shipping_discount: money(k.shipping_discount_minor, &k.currency)?,
                    code: k.code,
                    promotion_id: k.promotion_id,
                })
            })
            .collect::<Result<_, Problem>>()?,
        cart_id: c.cart_id,
        currency: c.currency.clone(),
        item_count: c.item_count,
        shipping_method: c.shipping_method,
        shipping_country: c.shipping_country,
        loyalty_points: c.loyalty_points,
        opened_at: c.opened_at,
        updated_at: c.updated_at,
    };
    Ok(Fresh { position, body }.into_response())
}

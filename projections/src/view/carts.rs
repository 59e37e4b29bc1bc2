//! `carts`: one row per cart with its running figures, its lines (`cart_lines`) and
//! applied coupons (`cart_coupons`). A customer's open cart is their row with status
//! `open`. Discounts and tax are only final at checkout, when the cart's events carry
//! the whole priced total; before that the row shows the subtotal, the chosen shipping
//! method and each coupon's discount as applied.

use aggregates::cart::Cart;
use aggregates::cart::CartEvent;
use aggregates::EventSourced;
use chrono::{DateTime, Utc};

use super::{minor, units};
use crate::event::{Event, ViewEvent};
use crate::projection::Projection;
use crate::row::{key, key2, Change};

pub struct Carts;

const CARTS: &str = "carts";
const LINES: &str = "cart_lines";
const COUPONS: &str = "cart_coupons";

impl Projection for Carts {
    fn name(&self) -> &'static str {
        "carts"
    }

    fn tables(&self) -> &'static [&'static str] {
        &[CARTS, LINES, COUPONS]
    }

    fn reads(&self, stream_type: &str) -> bool {
        stream_type == Cart::STREAM_TYPE
    }

    fn apply(&self, event: &Event<'_>, out: &mut Vec<Change>) {
        if let ViewEvent::Cart(e) = event.event {
            cart(event.stream_id, e, out);
        }
    }
}

fn row(cart_id: &str, at: DateTime<Utc>) -> Change {
    Change::update(CARTS, key("cart_id", cart_id)).set("updated_at", at)
}

fn cart(id: &str, event: &CartEvent, out: &mut Vec<Change>) {
    match event {
        CartEvent::CartOpened(e) => out.push(
            Change::upsert(CARTS, key("cart_id", id))
                .set("customer_id", e.customer_id.to_string())
                .set("currency", e.currency.as_str())
                .set("status", "open")
                .set("item_count", 0i64)
                .set("subtotal_minor", 0i64)
                .set("loyalty_points", 0i64)
                .set("loyalty_value_minor", 0i64)
                .set("opened_at", e.at)
                .set("updated_at", e.at),
        ),
        CartEvent::CartItemAdded(e) => {
            out.push(
                Change::upsert(LINES, key2("cart_id", id, "sku", e.sku.as_str()))
                    .set("product_name", &e.product_name)
                    .set("category", &e.category)
                    .set("quantity", units(e.quantity))
                    .set("currency", e.unit_price.currency.as_str())
                    .set("unit_price_minor", e.unit_price.amount)
                    .set("line_total_minor", e.line_total.amount),
            );
            out.push(minor(
                row(id, e.at).add("item_count", units(e.quantity_added)),
                "subtotal_minor",
                &e.subtotal,
            ));
        }
        CartEvent::CartItemQuantityChanged(e) => {
            out.push(
                Change::update(LINES, key2("cart_id", id, "sku", e.sku.as_str()))
                    .set("quantity", units(e.quantity))
                    .set("unit_price_minor", e.unit_price.amount)
                    .set("line_total_minor", e.line_total.amount),
            );
            let delta = units(e.quantity) - units(e.previous_quantity);
            out.push(minor(
                row(id, e.at).add("item_count", delta),
                "subtotal_minor",
                &e.subtotal,
            ));
        }
        CartEvent::CartItemRemoved(e) => {
            out.push(Change::delete(
                LINES,
                key2("cart_id", id, "sku", e.sku.as_str()),
            ));
            out.push(minor(
                row(id, e.at).add("item_count", -units(e.removed_quantity)),
                "subtotal_minor",
                &e.subtotal,
            ));
        }
        CartEvent::CartCouponApplied(e) => {
            out.push(
                Change::upsert(COUPONS, key2("cart_id", id, "code", e.terms.code.as_str()))
                    .set("promotion_id", e.terms.promotion_id.to_string())
                    .set("currency", e.item_discount.currency.as_str())
                    .set("item_discount_minor", e.item_discount.amount)
                    .set("shipping_discount_minor", e.shipping_discount.amount),
            );
            out.push(row(id, e.at));
        }
        CartEvent::CartCouponRemoved(e) => {
            out.push(Change::delete(
                COUPONS,
                key2("cart_id", id, "code", e.code.as_str()),
            ));
            out.push(row(id, e.at));
        }
        CartEvent::CartShippingAddressSet(e) => {
            out.push(row(id, e.at).set("shipping_country", e.address.country.0.as_str()));
        }
        CartEvent::CartShippingMethodSet(e) => {
            out.push(minor(
                row(id, e.at).set("shipping_method", &e.method.code),
                "shipping_minor",
                &e.method.price,
            ));
        }
        CartEvent::CartLoyaltyPointsSet(e) => {
            out.push(minor(
                row(id, e.at).set("loyalty_points", e.points),
                "loyalty_value_minor",
                &e.value,
            ));
        }
        CartEvent::CartCheckedOut(e) => {
            let t = &e.totals;
            let change = row(id, e.at)
                .set("status", "checked_out")
                .set("order_id", e.order_id.to_string())
                .set("checked_out_at", e.at)
                .set("shipping_method", &e.shipping_method.code)
                .set("shipping_country", e.shipping_address.country.0.as_str())
                .set("loyalty_points", t.loyalty_points);
            let change = minor(change, "subtotal_minor", &t.subtotal);
            let change = minor(change, "item_discount_minor", &t.item_discount);
            let change = minor(change, "shipping_minor", &t.shipping_total);
            let change = minor(change, "tax_minor", &t.tax);
            let change = minor(change, "loyalty_value_minor", &t.loyalty_value);
            out.push(minor(change, "grand_total_minor", &t.grand_total));
        }
        CartEvent::CartAbandoned(e) => {
            out.push(
                row(id, e.at)
                    .set("status", "abandoned")
                    .set("abandoned_at", e.at),
            );
        }
    }
}

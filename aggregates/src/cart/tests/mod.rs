use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cqrs_es::test::TestFramework;
use uuid::Uuid;

use super::*;
use crate::cart::event::example_cart_time;
use crate::promotion::{
    example_terms, DiscountKind, PromotionCode, PromotionTarget, PromotionTerms,
};
use crate::{Address, Currency, Decider, EventExample, Money, OrderId, PromotionId, Quantity, Sku};

mod props;
mod rules;
mod totals;

type Given = TestFramework<Cart>;

fn eur(amount: i64) -> Money {
    Money::new(amount, Currency::EUR)
}

fn now() -> DateTime<Utc> {
    example_cart_time()
}

fn sku(code: &str) -> Sku {
    Sku::parse(code).unwrap()
}

fn order_id() -> OrderId {
    OrderId(Uuid::from_u128(0x0192_0000_0000_7000_8000_0000_0000_0301))
}

fn open() -> CartCommand {
    let e = CartOpened::example();
    CartCommand::OpenCart(OpenCart {
        cart_id: e.cart_id,
        customer_id: e.customer_id,
        currency: e.currency,
        at: e.at,
    })
}

fn add(code: &str, category: &str, unit_price: i64, quantity: u32) -> CartCommand {
    CartCommand::AddItem(AddItem {
        sku: sku(code),
        product_name: format!("Product {code}"),
        category: category.into(),
        quantity: Quantity(quantity),
        unit_price: eur(unit_price),
        max_quantity_per_line: None,
        at: now(),
    })
}

/// The example line: 3 red T-shirts at 19.99.
fn add_shirts() -> CartCommand {
    let e = CartItemAdded::example();
    CartCommand::AddItem(AddItem {
        sku: e.sku,
        product_name: e.product_name,
        category: e.category,
        quantity: e.quantity_added,
        unit_price: e.unit_price,
        max_quantity_per_line: None,
        at: e.at,
    })
}

fn change(code: &str, quantity: u32) -> CartCommand {
    CartCommand::ChangeItemQuantity(ChangeItemQuantity {
        sku: sku(code),
        quantity: Quantity(quantity),
        max_quantity_per_line: None,
        at: now(),
    })
}

fn remove(code: &str) -> CartCommand {
    CartCommand::RemoveItem(RemoveItem {
        sku: sku(code),
        at: now(),
    })
}

fn apply(terms: PromotionTerms) -> CartCommand {
    CartCommand::ApplyCoupon(ApplyCoupon { terms, at: now() })
}

fn code(c: &str) -> PromotionCode {
    PromotionCode::parse(c).unwrap()
}

/// Whole-cart, no minimum, stackable terms of the given kind.
fn coupon(c: &str, kind: DiscountKind) -> PromotionTerms {
    PromotionTerms {
        promotion_id: PromotionId(Uuid::from_u128(c.len() as u128 + 0x500)),
        code: code(c),
        kind,
        minimum_subtotal: None,
        stackable: true,
        target: PromotionTarget {
            skus: BTreeSet::new(),
            categories: BTreeSet::new(),
        },
        ..example_terms()
    }
}

fn address() -> CartCommand {
    CartCommand::SetShippingAddress(SetShippingAddress {
        address: Address::example(),
        at: now(),
    })
}

fn shipping(price: i64) -> CartCommand {
    CartCommand::SetShippingMethod(SetShippingMethod {
        method: ShippingMethod {
            code: "dhl-standard".into(),
            price: eur(price),
        },
        at: now(),
    })
}

fn points(points: u64, value: i64) -> CartCommand {
    CartCommand::SetLoyaltyPoints(SetLoyaltyPoints {
        points,
        value: eur(value),
        at: now(),
    })
}

fn rates() -> TaxRates {
    TaxRates::from([("DE".to_string(), 1900), ("DE-BY".to_string(), 700)])
}

fn checkout() -> CartCommand {
    CartCommand::CheckOut(CheckOut {
        order_id: order_id(),
        tax_rates: rates(),
        at: now(),
    })
}

/// Checkout paying with `token` (none: nothing due), billed to the shipping address.
fn checkout_paying(token: Option<&str>) -> CartCommand {
    CartCommand::CheckOutWithPayment(CheckOutWithPayment {
        order_id: order_id(),
        tax_rates: rates(),
        payment: CheckoutPayment {
            method_token: token.map(str::to_string),
            billing_address: None,
        },
        at: now(),
    })
}

fn abandon(at: DateTime<Utc>) -> CartCommand {
    CartCommand::AbandonCart(AbandonCart {
        idle_threshold: Duration::from_secs(24 * 3600),
        at,
    })
}

/// The events of running `commands` in order on a new cart; panics on a refusal.
fn history(commands: Vec<CartCommand>) -> Vec<CartEvent> {
    let mut state = Cart::default();
    let mut all = Vec::new();
    for command in commands {
        let events = state
            .decide(command.clone())
            .unwrap_or_else(|e| panic!("{command:?} refused: {e}"));
        for event in events {
            state.evolve(&event);
            all.push(event);
        }
    }
    all
}

fn state_after(commands: Vec<CartCommand>) -> Cart {
    let mut state = Cart::default();
    for event in history(commands) {
        state.evolve(&event);
    }
    state
}

/// The example cart ready for checkout.
fn ready() -> Vec<CartCommand> {
    vec![
        open(),
        add_shirts(),
        apply(example_terms()),
        address(),
        shipping(495),
        points(500, 500),
    ]
}

use chrono::{DateTime, Duration, Utc};
use cqrs_es::test::TestFramework;
use uuid::Uuid;

use super::*;
use crate::promotion::event::example_time;
use crate::{Currency, CustomerId, EventExample, Money, OrderId};

mod discount;
mod props;
mod rules;

type Given = TestFramework<Promotion>;

fn eur(amount: i64) -> Money {
    Money::new(amount, Currency::EUR)
}

fn order(n: u128) -> OrderId {
    OrderId(Uuid::from_u128(
        0x0192_0000_0000_7000_8000_0000_0000_0300 + n,
    ))
}

fn customer(n: u128) -> CustomerId {
    CustomerId(Uuid::from_u128(
        0x0192_0000_0000_7000_8000_0000_0000_0100 + n,
    ))
}

/// The command that yields `PromotionCreated::example()`, with a code typed sloppily.
fn create() -> CreatePromotion {
    let t = example_terms();
    CreatePromotion {
        promotion_id: t.promotion_id,
        code: "  winter15 ".into(),
        kind: t.kind,
        minimum_subtotal: t.minimum_subtotal,
        starts_at: t.starts_at,
        ends_at: t.ends_at,
        usage_limit: t.usage_limit,
        per_customer_limit: t.per_customer_limit,
        stackable: t.stackable,
        target: t.target,
        at: PromotionCreated::example().at,
    }
}

fn created() -> PromotionEvent {
    PromotionCreated::example().into()
}

fn created_with(f: impl FnOnce(&mut PromotionTerms)) -> PromotionEvent {
    let mut e = PromotionCreated::example();
    f(&mut e.terms);
    e.into()
}

fn reserve(order_n: u128, customer_n: u128, at: DateTime<Utc>) -> PromotionCommand {
    PromotionCommand::ReserveRedemption(ReserveRedemption {
        order_id: order(order_n),
        customer_id: customer(customer_n),
        at,
    })
}

fn reserved(order_n: u128, customer_n: u128, uses: u32, customer_uses: u32) -> PromotionEvent {
    PromotionRedemptionReserved {
        order_id: order(order_n),
        customer_id: customer(customer_n),
        uses,
        customer_uses,
        ..PromotionRedemptionReserved::example()
    }
    .into()
}

fn now() -> DateTime<Utc> {
    example_time()
}

fn later(days: i64) -> DateTime<Utc> {
    example_time() + Duration::days(days)
}

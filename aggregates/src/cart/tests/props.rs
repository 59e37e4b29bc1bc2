//! Property: after any sequence of cart commands, the totals satisfy
//! `grand_total = Σ lines - discounts + shipping + tax - points >= 0`, live and at
//! checkout.

use proptest::prelude::*;

use super::*;
use crate::promotion::{DiscountTier, TierReward};

const SKUS: [(&str, &str); 5] = [
    ("TSHIRT", "apparel/t-shirts"),
    ("SOCKS", "apparel/socks"),
    ("MUG", "home/kitchen"),
    ("LAMP", "home/lighting"),
    ("BOOK", "media"),
];

fn coupons() -> Vec<PromotionTerms> {
    let apparel = PromotionTarget {
        skus: BTreeSet::new(),
        categories: BTreeSet::from(["apparel".to_string()]),
    };
    vec![
        coupon("PCT", DiscountKind::Percentage { basis_points: 1500 }),
        coupon("FIX", DiscountKind::FixedAmount { amount: eur(2500) }),
        coupon(
            "HUGE",
            DiscountKind::FixedAmount {
                amount: eur(1_000_000),
            },
        ),
        coupon("SHIP", DiscountKind::FreeShipping),
        PromotionTerms {
            target: apparel.clone(),
            ..coupon("B2G1", DiscountKind::BuyXGetY { buy: 2, get: 1 })
        },
        PromotionTerms {
            stackable: false,
            minimum_subtotal: Some(eur(5000)),
            ..coupon(
                "TIER",
                DiscountKind::Tiered {
                    tiers: vec![
                        DiscountTier {
                            threshold: eur(2000),
                            reward: TierReward::Percentage { basis_points: 500 },
                        },
                        DiscountTier {
                            threshold: eur(10_000),
                            reward: TierReward::FixedAmount { amount: eur(3000) },
                        },
                    ],
                },
            )
        },
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Add {
        sku: usize,
        price: i64,
        quantity: u32,
    },
    Change {
        sku: usize,
        quantity: u32,
    },
    Remove {
        sku: usize,
    },
    Apply {
        coupon: usize,
    },
    Unapply {
        coupon: usize,
    },
    Ship {
        price: i64,
    },
    Address {
        region: usize,
    },
    Points {
        points: u64,
        value: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..SKUS.len(), 1i64..20_000, 1u32..8)
            .prop_map(|(sku, price, quantity)| Op::Add { sku, price, quantity }),
        2 => (0..SKUS.len(), 0u32..110).prop_map(|(sku, quantity)| Op::Change { sku, quantity }),
        1 => (0..SKUS.len()).prop_map(|sku| Op::Remove { sku }),
        3 => (0..6usize).prop_map(|coupon| Op::Apply { coupon }),
        1 => (0..6usize).prop_map(|coupon| Op::Unapply { coupon }),
        2 => (0i64..2_000).prop_map(|price| Op::Ship { price }),
        1 => (0..3usize).prop_map(|region| Op::Address { region }),
        2 => (0u64..50_000, 0i64..50_000).prop_map(|(points, value)| Op::Points { points, value }),
    ]
}

fn command(op: &Op) -> CartCommand {
    let pool = coupons();
    match op {
        Op::Add {
            sku,
            price,
            quantity,
        } => add(SKUS[*sku].0, SKUS[*sku].1, *price, *quantity),
        Op::Change { sku, quantity } => change(SKUS[*sku].0, *quantity),
        Op::Remove { sku } => remove(SKUS[*sku].0),
        Op::Apply { coupon } => apply(pool[*coupon].clone()),
        Op::Unapply { coupon } => CartCommand::RemoveCoupon(RemoveCoupon {
            code: pool[*coupon].code.clone(),
            at: now(),
        }),
        Op::Ship { price } => shipping(*price),
        Op::Address { region } => CartCommand::SetShippingAddress(SetShippingAddress {
            address: Address {
                region: [None, Some("BY".to_string()), Some("BE".to_string())][*region].clone(),
                ..Address::example()
            },
            at: now(),
        }),
        Op::Points { points, value } => self::points(*points, *value),
    }
}

/// Checks every identity of the totals against the cart's own lines.
fn check(state: &Cart, t: &CartTotals) -> Result<(), TestCaseError> {
    let lines: i64 = state
        .lines
        .iter()
        .map(|l| l.unit_price.amount * i64::from(l.quantity.get()))
        .sum();
    prop_assert_eq!(t.subtotal.amount, lines);
    prop_assert_eq!(
        t.grand_total.amount,
        lines - t.item_discount.amount + t.shipping_total.amount + t.tax.amount
            - t.loyalty_value.amount
    );
    prop_assert!(t.grand_total.amount >= 0);
    prop_assert!(t.item_discount.amount >= 0 && t.item_discount.amount <= lines);
    prop_assert!(
        t.shipping_discount.amount >= 0 && t.shipping_discount.amount <= t.shipping.amount
    );
    prop_assert_eq!(
        t.shipping_total.amount,
        t.shipping.amount - t.shipping_discount.amount
    );
    prop_assert_eq!(
        t.item_discount.amount,
        t.coupons
            .iter()
            .map(|c| c.item_discount.amount)
            .sum::<i64>()
    );
    prop_assert_eq!(
        t.shipping_discount.amount,
        t.coupons
            .iter()
            .map(|c| c.shipping_discount.amount)
            .sum::<i64>()
    );
    let taxable = lines - t.item_discount.amount + t.shipping_total.amount;
    prop_assert_eq!(
        t.tax,
        eur(taxable).percent_of(t.tax_rate_basis_points).unwrap()
    );
    let requested = state.loyalty.as_ref().map_or(0, |l| l.value.amount);
    prop_assert!(t.loyalty_value.amount >= 0 && t.loyalty_value.amount <= requested);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn grand_total_is_lines_minus_discounts_plus_shipping_and_tax_minus_points(
        ops in proptest::collection::vec(op(), 0..40),
    ) {
        let mut state = Cart::default();
        for event in history(vec![open()]) {
            state.evolve(&event);
        }
        for op in &ops {
            if let Ok(events) = state.decide(command(op)) {
                for event in &events {
                    state.evolve(event);
                }
            }
            if let Ok(live) = state.live_totals(&rates(), now()) {
                check(&state, &live)?;
            }
        }
        // Make checkout possible whenever the sequence allows it.
        for c in [add("BOOK", "media", 1234, 1), address(), shipping(495)] {
            if let Ok(events) = state.decide(c) {
                for event in &events {
                    state.evolve(event);
                }
            }
        }
        let outcome = state.decide(checkout());
        match outcome {
            Ok(events) => {
                let [CartEvent::CartCheckedOut(e)] = &events[..] else {
                    return Err(TestCaseError::fail(format!("unexpected {events:?}")));
                };
                check(&state, &e.totals)?;
                prop_assert_eq!(&e.lines, &state.lines);
                prop_assert_eq!(Ok(e.totals.clone()), state.live_totals(&rates(), now()));
            }
            // The only acceptable refusal: a coupon the edits made inapplicable.
            Err(err) => prop_assert!(
                matches!(err, CartError::CouponNotApplicable { .. }),
                "unexpected refusal {:?}", err
            ),
        }
    }
}

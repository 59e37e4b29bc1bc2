//! The shared discount rules, [`PromotionTerms::discount`].

use std::collections::BTreeSet;

use super::*;
use crate::{Quantity, Sku};

fn line(sku: &str, category: &str, unit_price: i64, quantity: u32) -> DiscountLine {
    DiscountLine {
        sku: Sku::parse(sku).unwrap(),
        category: category.into(),
        unit_price: eur(unit_price),
        quantity: Quantity(quantity),
    }
}

fn terms(kind: DiscountKind) -> PromotionTerms {
    PromotionTerms {
        kind,
        minimum_subtotal: None,
        target: PromotionTarget::default(),
        ..example_terms()
    }
}

fn cart() -> Vec<DiscountLine> {
    vec![
        line("TSHIRT", "apparel/t-shirts", 2000, 2),
        line("MUG", "home/kitchen", 1000, 1),
        line("SOCKS", "apparel/socks", 500, 3),
    ]
}

fn discount(t: &PromotionTerms, lines: &[DiscountLine]) -> Result<Discount, DiscountError> {
    t.discount(lines, eur(495), now())
}

fn items(amount: i64) -> Discount {
    Discount {
        items: eur(amount),
        shipping: eur(0),
    }
}

#[test]
fn a_percentage_applies_to_targeted_categories_and_their_sub_categories() {
    let mut t = terms(DiscountKind::Percentage { basis_points: 1000 });
    assert_eq!(discount(&t, &cart()), Ok(items(6500 / 10)));
    t.target.categories = BTreeSet::from(["apparel".to_string()]);
    // 4000 + 1500 = 5500 targeted
    assert_eq!(discount(&t, &cart()), Ok(items(550)));
    t.target.categories = BTreeSet::from(["appar".to_string()]);
    assert_eq!(discount(&t, &cart()), Err(DiscountError::NoEligibleItems));
}

#[test]
fn a_sku_target_selects_lines() {
    let mut t = terms(DiscountKind::Percentage { basis_points: 5000 });
    t.target.skus = BTreeSet::from([Sku::parse("MUG").unwrap()]);
    assert_eq!(discount(&t, &cart()), Ok(items(500)));
}

#[test]
fn a_percentage_rounds_half_to_even() {
    let t = terms(DiscountKind::Percentage { basis_points: 1000 });
    // 10% of 25 = 2.5 -> 2, 10% of 35 = 3.5 -> 4
    assert_eq!(discount(&t, &[line("A", "x", 25, 1)]), Ok(items(2)));
    assert_eq!(discount(&t, &[line("A", "x", 35, 1)]), Ok(items(4)));
}

#[test]
fn a_fixed_amount_never_exceeds_the_targeted_subtotal() {
    let t = terms(DiscountKind::FixedAmount { amount: eur(1500) });
    assert_eq!(discount(&t, &cart()), Ok(items(1500)));
    assert_eq!(discount(&t, &[line("A", "x", 999, 1)]), Ok(items(999)));
}

#[test]
fn free_shipping_takes_the_shipping_price() {
    let t = terms(DiscountKind::FreeShipping);
    assert_eq!(
        discount(&t, &cart()),
        Ok(Discount {
            items: eur(0),
            shipping: eur(495)
        })
    );
}

#[test]
fn buy_x_get_y_frees_the_cheapest_targeted_units() {
    // 6 units: buy 2 get 1 -> 2 free units, the two cheapest (socks at 5.00)
    let t = terms(DiscountKind::BuyXGetY { buy: 2, get: 1 });
    assert_eq!(discount(&t, &cart()), Ok(items(1000)));
    // 5 units -> one free unit
    let five = [line("A", "x", 700, 2), line("B", "x", 300, 3)];
    assert_eq!(discount(&t, &five), Ok(items(300)));
    // the result does not depend on line order
    let reversed: Vec<_> = cart().into_iter().rev().collect();
    assert_eq!(discount(&t, &reversed), discount(&t, &cart()));
}

#[test]
fn buy_x_get_y_needs_a_full_group() {
    let t = terms(DiscountKind::BuyXGetY { buy: 2, get: 1 });
    assert_eq!(
        discount(&t, &[line("A", "x", 700, 2)]),
        Err(DiscountError::NotEnoughItems { needed: 3, have: 2 })
    );
}

#[test]
fn tiered_takes_the_highest_tier_reached() {
    let t = terms(DiscountKind::Tiered {
        tiers: vec![
            DiscountTier {
                threshold: eur(5000),
                reward: TierReward::Percentage { basis_points: 500 },
            },
            DiscountTier {
                threshold: eur(6000),
                reward: TierReward::FixedAmount { amount: eur(1000) },
            },
            DiscountTier {
                threshold: eur(10_000),
                reward: TierReward::Percentage { basis_points: 2000 },
            },
        ],
    });
    assert_eq!(discount(&t, &cart()), Ok(items(1000)));
    assert_eq!(discount(&t, &[line("A", "x", 5000, 1)]), Ok(items(250)));
    assert_eq!(
        discount(&t, &[line("A", "x", 4999, 1)]),
        Err(DiscountError::NoTierReached { lowest: eur(5000) })
    );
}

#[test]
fn the_minimum_is_checked_against_the_whole_subtotal() {
    let mut t = terms(DiscountKind::Percentage { basis_points: 1000 });
    t.minimum_subtotal = Some(eur(7000));
    assert_eq!(
        discount(&t, &cart()),
        Err(DiscountError::BelowMinimumSubtotal {
            minimum: eur(7000),
            subtotal: eur(6500)
        })
    );
    t.minimum_subtotal = Some(eur(6500));
    assert_eq!(discount(&t, &cart()), Ok(items(650)));
}

#[test]
fn the_window_is_start_inclusive_and_end_exclusive() {
    let t = terms(DiscountKind::Percentage { basis_points: 1000 });
    let starts_at = t.starts_at;
    let ended_at = t.ends_at.unwrap();
    assert!(t.discount(&cart(), eur(0), starts_at).is_ok());
    assert_eq!(
        t.discount(&cart(), eur(0), starts_at - Duration::seconds(1)),
        Err(DiscountError::NotYetActive { starts_at })
    );
    assert_eq!(
        t.discount(&cart(), eur(0), ended_at),
        Err(DiscountError::Expired { ended_at })
    );
}

#[test]
fn amounts_in_another_currency_are_refused() {
    let t = terms(DiscountKind::FixedAmount { amount: eur(100) });
    let usd = [DiscountLine {
        unit_price: Money::new(1000, Currency::USD),
        ..line("A", "x", 0, 1)
    }];
    assert_eq!(
        t.discount(&usd, Money::new(0, Currency::USD), now()),
        Err(DiscountError::CurrencyMismatch {
            expected: Currency::USD,
            found: Currency::EUR
        })
    );
}

#[test]
fn an_empty_cart_has_nothing_to_discount() {
    let t = terms(DiscountKind::FreeShipping);
    assert_eq!(discount(&t, &[]), Err(DiscountError::NoEligibleItems));
}

#[test]
fn overflow_is_an_error_not_a_panic() {
    let t = terms(DiscountKind::Percentage { basis_points: 1000 });
    assert_eq!(
        discount(&t, &[line("A", "x", i64::MAX / 2, 3)]),
        Err(DiscountError::AmountOutOfRange)
    );
}

//! [`CartTotals::compute`], the single totals computation.

use super::*;

fn line(code: &str, unit_price: i64, quantity: u32) -> CartLine {
    CartLine {
        sku: sku(code),
        product_name: code.into(),
        category: "misc".into(),
        unit_price: eur(unit_price),
        quantity: Quantity(quantity),
        line_total: eur(unit_price * i64::from(quantity)),
    }
}

fn compute(
    lines: &[CartLine],
    coupons: &[PromotionTerms],
    shipping: i64,
    rate: u32,
    loyalty: Option<LoyaltyRedemption>,
) -> Result<CartTotals, CartError> {
    CartTotals::compute(&TotalsInput {
        currency: Currency::EUR,
        lines,
        coupons,
        shipping_price: Some(eur(shipping)),
        tax_rate_basis_points: rate,
        loyalty: loyalty.as_ref(),
        now: now(),
    })
}

#[test]
fn stacked_coupons_never_take_more_than_the_subtotal() {
    let lines = [line("A", 3000, 1)];
    let coupons = [
        coupon("HALF", DiscountKind::Percentage { basis_points: 5000 }),
        coupon("BIG", DiscountKind::FixedAmount { amount: eur(2000) }),
        coupon("SHIP", DiscountKind::FreeShipping),
    ];
    let t = compute(&lines, &coupons, 500, 1000, None).unwrap();
    assert_eq!(t.item_discount, eur(3000));
    assert_eq!(t.coupons[0].item_discount, eur(1500));
    // capped by what the first coupon left
    assert_eq!(t.coupons[1].item_discount, eur(1500));
    assert_eq!(t.coupons[2].shipping_discount, eur(500));
    assert_eq!(t.shipping_total, eur(0));
    assert_eq!(t.tax, eur(0));
    assert_eq!(t.grand_total, eur(0));
}

#[test]
fn tax_is_charged_on_discounted_items_plus_shipping() {
    let lines = [line("A", 10_000, 1)];
    let coupons = [coupon(
        "TEN",
        DiscountKind::FixedAmount { amount: eur(1000) },
    )];
    let t = compute(&lines, &coupons, 500, 1900, None).unwrap();
    // (100.00 - 10.00 + 5.00) × 19% = 18.05
    assert_eq!(t.tax, eur(1805));
    assert_eq!(t.grand_total, eur(9500 + 1805));
}

#[test]
fn points_are_capped_at_the_amount_due_and_redeemed_in_proportion() {
    let lines = [line("A", 1000, 1)];
    let loyalty = LoyaltyRedemption {
        points: 3000,
        value: eur(3000),
    };
    // due: 10.00 + 19% = 11.90
    let t = compute(&lines, &[], 0, 1900, Some(loyalty)).unwrap();
    assert_eq!(t.loyalty_value, eur(1190));
    assert_eq!(t.loyalty_points, 1190);
    assert_eq!(t.grand_total, eur(0));
    // rounding up: 1 point is worth 3 cents here, 1190 / 3 = 396.67 -> 397 points
    let t = compute(
        &lines,
        &[],
        0,
        1900,
        Some(LoyaltyRedemption {
            points: 1000,
            value: eur(3000),
        }),
    )
    .unwrap();
    assert_eq!(t.loyalty_points, 397);
}

#[test]
fn points_below_the_amount_due_are_redeemed_whole() {
    let t = compute(
        &[line("A", 1000, 2)],
        &[],
        0,
        0,
        Some(LoyaltyRedemption {
            points: 100,
            value: eur(150),
        }),
    )
    .unwrap();
    assert_eq!((t.loyalty_points, t.loyalty_value), (100, eur(150)));
    assert_eq!(t.grand_total, eur(1850));
}

#[test]
fn a_line_in_another_currency_is_an_error() {
    let mut usd = line("A", 1000, 1);
    usd.unit_price = Money::new(1000, Currency::USD);
    assert_eq!(
        compute(&[usd], &[], 0, 0, None),
        Err(CartError::CurrencyMismatch {
            expected: Currency::EUR,
            found: Currency::USD
        })
    );
}

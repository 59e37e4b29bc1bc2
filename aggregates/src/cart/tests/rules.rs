use super::*;

fn refused(given: Vec<CartCommand>, when: CartCommand, error: CartError) {
    Given::with(())
        .given(history(given))
        .when(when)
        .then_expect_error(error);
}

fn accepted(given: Vec<CartCommand>, when: CartCommand) -> Vec<CartEvent> {
    Given::with(())
        .given(history(given))
        .when(when)
        .inspect_result()
        .unwrap_or_else(|e| panic!("refused: {e}"))
}

#[test]
fn opens_a_cart() {
    Given::with(())
        .given_no_previous_events()
        .when(open())
        .then_expect_events(vec![CartOpened::example().into()]);
}

#[test]
fn refuses_to_open_twice() {
    refused(vec![open()], open(), CartError::AlreadyOpened);
}

#[test]
fn an_unopened_cart_takes_no_items() {
    Given::with(())
        .given_no_previous_events()
        .when(add_shirts())
        .then_expect_error(CartError::NotOpened);
}

#[test]
fn adds_an_item() {
    Given::with(())
        .given(history(vec![open()]))
        .when(add_shirts())
        .then_expect_events(vec![CartItemAdded::example().into()]);
}

#[test]
fn adding_an_existing_sku_increases_its_quantity_at_the_new_price() {
    let events = accepted(
        vec![open(), add("MUG", "home", 1000, 2)],
        add("MUG", "home", 900, 3),
    );
    match &events[..] {
        [CartEvent::CartItemAdded(e)] => {
            assert_eq!(e.quantity_added, Quantity(3));
            assert_eq!(e.quantity, Quantity(5));
            assert_eq!(e.line_total, eur(4500));
            assert_eq!(e.subtotal, eur(4500));
        }
        other => panic!("unexpected {other:?}"),
    }
    let state = state_after(vec![
        open(),
        add("MUG", "home", 1000, 2),
        add("MUG", "home", 900, 3),
    ]);
    assert_eq!(state.lines.len(), 1);
}

#[test]
fn refuses_a_price_in_another_currency() {
    let CartCommand::AddItem(mut c) = add("MUG", "home", 1000, 1) else {
        unreachable!()
    };
    c.unit_price = Money::new(1000, Currency::USD);
    refused(
        vec![open()],
        CartCommand::AddItem(c),
        CartError::CurrencyMismatch {
            expected: Currency::EUR,
            found: Currency::USD,
        },
    );
}

#[test]
fn refuses_a_zero_unit_price() {
    refused(
        vec![open()],
        add("MUG", "home", 0, 1),
        CartError::NonPositiveUnitPrice(eur(0)),
    );
}

#[test]
fn refuses_a_line_amount_out_of_range() {
    refused(
        vec![open()],
        add("MUG", "home", i64::MAX / 2, 3),
        CartError::AmountOutOfRange,
    );
}

#[test]
fn a_line_holds_one_to_ninety_nine_units_by_default() {
    refused(
        vec![open()],
        add("MUG", "home", 1000, 0),
        CartError::InvalidQuantity {
            quantity: 0,
            max: 99,
        },
    );
    refused(
        vec![open(), add("MUG", "home", 1000, 60)],
        add("MUG", "home", 1000, 40),
        CartError::InvalidQuantity {
            quantity: 100,
            max: 99,
        },
    );
    refused(
        vec![open(), add("MUG", "home", 1000, 60)],
        change("MUG", 0),
        CartError::InvalidQuantity {
            quantity: 0,
            max: 99,
        },
    );
}

#[test]
fn the_line_limit_can_be_overridden() {
    let CartCommand::AddItem(mut c) = add("MUG", "home", 1000, 5) else {
        unreachable!()
    };
    c.max_quantity_per_line = Some(4);
    refused(
        vec![open()],
        CartCommand::AddItem(c.clone()),
        CartError::InvalidQuantity {
            quantity: 5,
            max: 4,
        },
    );
    c.max_quantity_per_line = Some(500);
    c.quantity = Quantity(250);
    accepted(vec![open()], CartCommand::AddItem(c));
}

#[test]
fn refuses_more_lines_than_the_maximum() {
    let mut given = vec![open()];
    for i in 0..MAX_LINES {
        given.push(add(&format!("SKU-{i}"), "misc", 100, 1));
    }
    refused(
        given.clone(),
        add("ONE-MORE", "misc", 100, 1),
        CartError::TooManyLines { max: MAX_LINES },
    );
    // An existing line can still grow.
    accepted(given, add("SKU-0", "misc", 100, 1));
}

#[test]
fn changes_a_quantity() {
    Given::with(())
        .given(history(vec![open(), add_shirts()]))
        .when(change("TSHIRT-RED-M", 2))
        .then_expect_events(vec![CartItemQuantityChanged::example().into()]);
}

#[test]
fn removes_an_item() {
    Given::with(())
        .given(history(vec![open(), add_shirts()]))
        .when(remove("TSHIRT-RED-M"))
        .then_expect_events(vec![CartItemRemoved::example().into()]);
}

#[test]
fn refuses_to_change_or_remove_an_item_not_in_the_cart() {
    refused(
        vec![open()],
        change("MUG", 1),
        CartError::ItemNotInCart(sku("MUG")),
    );
    refused(
        vec![open()],
        remove("MUG"),
        CartError::ItemNotInCart(sku("MUG")),
    );
}

#[test]
fn applies_a_coupon_with_its_current_discount() {
    Given::with(())
        .given(history(vec![open(), add_shirts()]))
        .when(apply(example_terms()))
        .then_expect_events(vec![CartCouponApplied::example().into()]);
}

#[test]
fn refuses_the_same_code_twice() {
    let c = coupon("TEN", DiscountKind::Percentage { basis_points: 1000 });
    refused(
        vec![open(), add_shirts(), apply(c.clone())],
        apply(c),
        CartError::CouponAlreadyApplied(code("TEN")),
    );
}

#[test]
fn several_coupons_only_when_all_are_stackable() {
    let ten = coupon("TEN", DiscountKind::Percentage { basis_points: 1000 });
    let ship = coupon("SHIPFREE", DiscountKind::FreeShipping);
    let lonely = PromotionTerms {
        stackable: false,
        ..coupon("ALONE", DiscountKind::FixedAmount { amount: eur(100) })
    };
    refused(
        vec![open(), add_shirts(), apply(ten.clone())],
        apply(lonely.clone()),
        CartError::CouponNotStackable(code("ALONE")),
    );
    refused(
        vec![open(), add_shirts(), apply(lonely)],
        apply(ship.clone()),
        CartError::CouponNotStackable(code("SHIPFREE")),
    );
    accepted(vec![open(), add_shirts(), apply(ten)], apply(ship));
}

#[test]
fn refuses_more_coupons_than_the_maximum() {
    let mut given = vec![open(), add_shirts()];
    for i in 0..MAX_COUPONS {
        given.push(apply(coupon(
            &format!("C{i}"),
            DiscountKind::Percentage { basis_points: 100 },
        )));
    }
    refused(
        given,
        apply(coupon("EXTRA", DiscountKind::FreeShipping)),
        CartError::TooManyCoupons { max: MAX_COUPONS },
    );
}

#[test]
fn refuses_a_coupon_priced_in_another_currency() {
    let usd = coupon(
        "USD5",
        DiscountKind::FixedAmount {
            amount: Money::new(500, Currency::USD),
        },
    );
    refused(
        vec![open(), add_shirts()],
        apply(usd),
        CartError::CurrencyMismatch {
            expected: Currency::EUR,
            found: Currency::USD,
        },
    );
}

#[test]
fn refuses_a_coupon_that_does_not_apply() {
    // The example coupon needs 50.00; one shirt is 19.99.
    refused(
        vec![open(), add("TSHIRT-RED-M", "apparel/t-shirts", 1999, 1)],
        apply(example_terms()),
        CartError::CouponNotApplicable {
            code: code("WINTER15"),
            reason: crate::promotion::DiscountError::BelowMinimumSubtotal {
                minimum: eur(5000),
                subtotal: eur(1999),
            },
        },
    );
}

#[test]
fn a_coupon_that_stopped_applying_blocks_checkout_until_removed() {
    let mut given = ready();
    given.push(change("TSHIRT-RED-M", 1));
    given.push(points(0, 0));
    refused(
        given.clone(),
        checkout(),
        CartError::CouponNotApplicable {
            code: code("WINTER15"),
            reason: crate::promotion::DiscountError::BelowMinimumSubtotal {
                minimum: eur(5000),
                subtotal: eur(1999),
            },
        },
    );
    given.push(CartCommand::RemoveCoupon(RemoveCoupon {
        code: code("WINTER15"),
        at: now(),
    }));
    accepted(given, checkout());
}

#[test]
fn removes_a_coupon() {
    Given::with(())
        .given(history(vec![open(), add_shirts(), apply(example_terms())]))
        .when(CartCommand::RemoveCoupon(RemoveCoupon {
            code: code("winter15"),
            at: now(),
        }))
        .then_expect_events(vec![CartCouponRemoved::example().into()]);
}

#[test]
fn refuses_to_remove_a_coupon_not_applied() {
    refused(
        vec![open(), add_shirts()],
        CartCommand::RemoveCoupon(RemoveCoupon {
            code: code("WINTER15"),
            at: now(),
        }),
        CartError::CouponNotInCart(code("WINTER15")),
    );
}

#[test]
fn sets_the_address_and_shipping_method() {
    Given::with(())
        .given(history(vec![open()]))
        .when(address())
        .then_expect_events(vec![CartShippingAddressSet::example().into()]);
    Given::with(())
        .given(history(vec![open()]))
        .when(shipping(495))
        .then_expect_events(vec![CartShippingMethodSet::example().into()]);
}

#[test]
fn refuses_a_shipping_method_without_code() {
    refused(
        vec![open()],
        CartCommand::SetShippingMethod(SetShippingMethod {
            method: ShippingMethod {
                code: " ".into(),
                price: eur(495),
            },
            at: now(),
        }),
        CartError::EmptyShippingMethodCode,
    );
}

#[test]
fn refuses_a_negative_shipping_price() {
    refused(
        vec![open()],
        shipping(-1),
        CartError::NegativeShippingPrice(eur(-1)),
    );
}

#[test]
fn sets_loyalty_points() {
    Given::with(())
        .given(history(vec![open(), add_shirts()]))
        .when(points(500, 500))
        .then_expect_events(vec![CartLoyaltyPointsSet::example().into()]);
}

#[test]
fn points_and_value_are_both_zero_or_both_positive() {
    refused(
        vec![open(), add_shirts()],
        points(0, 500),
        CartError::InvalidLoyaltyRedemption {
            points: 0,
            value: eur(500),
        },
    );
    refused(
        vec![open(), add_shirts()],
        points(100, 0),
        CartError::InvalidLoyaltyRedemption {
            points: 100,
            value: eur(0),
        },
    );
    let state = state_after(vec![open(), add_shirts(), points(500, 500), points(0, 0)]);
    assert_eq!(state.loyalty, None);
}

#[test]
fn points_cannot_be_worth_more_than_the_amount_due() {
    // 59.97 - 9.00 + 4.95 = 55.92 due before tax
    refused(
        vec![open(), add_shirts(), apply(example_terms()), shipping(495)],
        points(6000, 5593),
        CartError::LoyaltyValueExceedsAmountDue {
            value: eur(5593),
            due: eur(5592),
        },
    );
    accepted(
        vec![open(), add_shirts(), apply(example_terms()), shipping(495)],
        points(6000, 5592),
    );
}

#[test]
fn checks_out_with_every_figure() {
    Given::with(())
        .given(history(ready()))
        .when(checkout_paying(Some("tok_visa")))
        .then_expect_events(vec![CartCheckedOut::example().into()]);
}

#[test]
fn a_plain_checkout_carries_no_payment() {
    Given::with(())
        .given(history(ready()))
        .when(checkout())
        .then_expect_events(vec![CartCheckedOut {
            payment: None,
            ..CartCheckedOut::example()
        }
        .into()]);
}

#[test]
fn a_checkout_with_money_due_needs_a_payment_method() {
    for token in [None, Some(""), Some("   ")] {
        refused(
            ready(),
            checkout_paying(token),
            CartError::PaymentMethodRequired { due: eur(6154) },
        );
    }
}

#[test]
fn nothing_due_needs_no_payment_method() {
    // 59.97 - 9.00 + 4.95 = 55.92, untaxed, all of it paid in points.
    let mut given = ready();
    given.push(points(5592, 5592));
    let CartCommand::CheckOutWithPayment(mut command) = checkout_paying(None) else {
        unreachable!()
    };
    command.tax_rates = TaxRates::from([("DE".to_string(), 0)]);
    let events = accepted(given, CartCommand::CheckOutWithPayment(command));
    let [CartEvent::CartCheckedOut(e)] = &events[..] else {
        panic!("unexpected {events:?}")
    };
    assert!(e.totals.grand_total.is_zero(), "{:?}", e.totals);
    assert_eq!(
        e.payment,
        Some(CheckoutPayment {
            method_token: None,
            billing_address: None,
        })
    );
}

#[test]
fn a_stored_v1_checkout_upcasts_to_no_payment() {
    use crate::EventSourced;
    let stored: serde_json::Value = serde_json::from_str(include_str!(
        "../../../tests/fixtures/cart_checked_out.v1.json"
    ))
    .expect("fixture is JSON");
    assert!(stored.get("payment").is_none());
    let event = Cart::decode("CartCheckedOut", 1, stored).expect("v1 decodes");
    let CartEvent::CartCheckedOut(e) = &event else {
        panic!("unexpected {event:?}")
    };
    assert_eq!(e.payment, None);
    assert_eq!(e.totals.grand_total, eur(6154));
    // Re-encoded, it is a v2 event.
    let (event_type, version, payload) = event.encode();
    assert_eq!((event_type, version), ("CartCheckedOut", 2));
    assert_eq!(payload["payment"], serde_json::Value::Null);
}

#[test]
fn the_region_rate_wins_over_the_country_rate() {
    let mut given = ready();
    given.push(CartCommand::SetShippingAddress(SetShippingAddress {
        address: Address {
            region: Some("BY".into()),
            ..Address::example()
        },
        at: now(),
    }));
    let events = accepted(given, checkout());
    let [CartEvent::CartCheckedOut(e)] = &events[..] else {
        panic!("unexpected {events:?}")
    };
    assert_eq!(e.tax_region, "DE-BY");
    assert_eq!(e.totals.tax_rate_basis_points, 700);
    // 7% of 55.92 = 3.9144
    assert_eq!(e.totals.tax, eur(391));
}

#[test]
fn refuses_to_check_out_an_empty_cart() {
    refused(
        vec![open(), address(), shipping(495)],
        checkout(),
        CartError::EmptyCart,
    );
}

#[test]
fn refuses_to_check_out_without_address() {
    refused(
        vec![open(), add_shirts(), shipping(495)],
        checkout(),
        CartError::MissingShippingAddress,
    );
}

#[test]
fn refuses_to_check_out_without_shipping_method() {
    refused(
        vec![open(), add_shirts(), address()],
        checkout(),
        CartError::MissingShippingMethod,
    );
}

#[test]
fn refuses_to_check_out_without_a_tax_rate() {
    let mut given = ready();
    given.push(CartCommand::SetShippingAddress(SetShippingAddress {
        address: Address {
            region: Some("CA".into()),
            country: crate::CountryCode("US".into()),
            ..Address::example()
        },
        at: now(),
    }));
    refused(
        given,
        checkout(),
        CartError::MissingTaxRate {
            tax_region: "US-CA".into(),
        },
    );
}

#[test]
fn nothing_changes_after_checkout() {
    let mut given = ready();
    given.push(checkout());
    for command in [
        add_shirts(),
        remove("TSHIRT-RED-M"),
        checkout(),
        abandon(now()),
    ] {
        refused(
            given.clone(),
            command,
            CartError::AlreadyCheckedOut(order_id()),
        );
    }
    refused(given, open(), CartError::AlreadyOpened);
}

#[test]
fn abandons_an_idle_cart() {
    Given::with(())
        .given(history(vec![open(), add_shirts()]))
        .when(abandon(now() + chrono::Duration::days(2)))
        .then_expect_events(vec![CartAbandoned::example().into()]);
}

#[test]
fn refuses_to_abandon_a_recently_active_cart() {
    refused(
        vec![open(), add_shirts()],
        abandon(now() + chrono::Duration::hours(23)),
        CartError::StillActive {
            last_activity_at: now(),
            idle_from: now() + chrono::Duration::hours(24),
        },
    );
}

#[test]
fn refuses_an_idle_threshold_beyond_the_calendar() {
    refused(
        vec![open(), add_shirts()],
        CartCommand::AbandonCart(AbandonCart {
            idle_threshold: Duration::MAX,
            at: now(),
        }),
        CartError::IdleThresholdOutOfRange(Duration::MAX),
    );
}

#[test]
fn nothing_changes_after_abandonment() {
    let given = vec![
        open(),
        add_shirts(),
        abandon(now() + chrono::Duration::days(2)),
    ];
    for command in [
        add_shirts(),
        checkout(),
        abandon(now() + chrono::Duration::days(3)),
    ] {
        refused(given.clone(), command, CartError::AlreadyAbandoned);
    }
}

#[test]
fn live_totals_match_the_checkout_totals() {
    let state = state_after(ready());
    let live = state.live_totals(&rates(), now()).unwrap();
    assert_eq!(live, CartCheckedOut::example().totals);
    let no_address = state_after(vec![open(), add_shirts(), shipping(495)]);
    let live = no_address.live_totals(&rates(), now()).unwrap();
    assert_eq!(live.tax, eur(0));
    assert_eq!(live.grand_total, eur(5997 + 495));
}

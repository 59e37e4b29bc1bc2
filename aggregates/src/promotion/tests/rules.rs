use super::*;

fn refuses_creation(f: impl FnOnce(&mut CreatePromotion), error: PromotionError) {
    let mut c = create();
    f(&mut c);
    Given::with(())
        .given_no_previous_events()
        .when(PromotionCommand::CreatePromotion(c))
        .then_expect_error(error);
}

#[test]
fn creates_a_promotion_with_a_normalised_code() {
    Given::with(())
        .given_no_previous_events()
        .when(PromotionCommand::CreatePromotion(create()))
        .then_expect_events(vec![created()]);
}

#[test]
fn codes_are_trimmed_upper_cased_and_bounded() {
    assert_eq!(
        PromotionCode::parse(" summer-10 ").unwrap().as_str(),
        "SUMMER-10"
    );
    assert!(PromotionCode::parse("   ").is_err());
    assert!(PromotionCode::parse("TEN %").is_err());
    assert!(PromotionCode::parse(&"A".repeat(32)).is_ok());
    assert!(PromotionCode::parse(&"A".repeat(33)).is_err());
    let parsed: PromotionCode = serde_json::from_str("\"winter15\"").unwrap();
    assert_eq!(parsed.as_str(), "WINTER15");
}

#[test]
fn refuses_to_create_twice() {
    Given::with(())
        .given(vec![created()])
        .when(PromotionCommand::CreatePromotion(create()))
        .then_expect_error(PromotionError::AlreadyExists);
}

#[test]
fn refuses_an_invalid_code() {
    refuses_creation(
        |c| c.code = "10% OFF".into(),
        PromotionError::InvalidCode("10% OFF".into()),
    );
}

#[test]
fn refuses_a_percentage_outside_one_to_ten_thousand_basis_points() {
    refuses_creation(
        |c| c.kind = DiscountKind::Percentage { basis_points: 0 },
        PromotionError::InvalidPercentage(0),
    );
    refuses_creation(
        |c| {
            c.kind = DiscountKind::Tiered {
                tiers: vec![DiscountTier {
                    threshold: eur(1000),
                    reward: TierReward::Percentage {
                        basis_points: 10_001,
                    },
                }],
            }
        },
        PromotionError::InvalidPercentage(10_001),
    );
}

#[test]
fn refuses_a_non_positive_amount() {
    refuses_creation(
        |c| c.kind = DiscountKind::FixedAmount { amount: eur(0) },
        PromotionError::NonPositiveAmount(eur(0)),
    );
    refuses_creation(
        |c| c.minimum_subtotal = Some(eur(-1)),
        PromotionError::NonPositiveAmount(eur(-1)),
    );
}

#[test]
fn refuses_amounts_in_several_currencies() {
    refuses_creation(
        |c| {
            c.kind = DiscountKind::FixedAmount {
                amount: Money::new(500, Currency::USD),
            }
        },
        PromotionError::MixedCurrencies {
            expected: Currency::EUR,
            found: Currency::USD,
        },
    );
}

#[test]
fn refuses_buy_x_get_y_with_a_zero() {
    refuses_creation(
        |c| c.kind = DiscountKind::BuyXGetY { buy: 2, get: 0 },
        PromotionError::InvalidBuyXGetY { buy: 2, get: 0 },
    );
}

#[test]
fn refuses_a_tiered_promotion_without_tiers() {
    refuses_creation(
        |c| c.kind = DiscountKind::Tiered { tiers: vec![] },
        PromotionError::NoTiers,
    );
}

#[test]
fn refuses_two_tiers_with_the_same_threshold() {
    let tier = |bp| DiscountTier {
        threshold: eur(10_000),
        reward: TierReward::Percentage { basis_points: bp },
    };
    refuses_creation(
        |c| {
            c.kind = DiscountKind::Tiered {
                tiers: vec![tier(500), tier(1000)],
            }
        },
        PromotionError::DuplicateTierThreshold(eur(10_000)),
    );
}

#[test]
fn tiers_are_stored_in_ascending_order() {
    let tier = |threshold, bp| DiscountTier {
        threshold: eur(threshold),
        reward: TierReward::Percentage { basis_points: bp },
    };
    let mut c = create();
    c.kind = DiscountKind::Tiered {
        tiers: vec![tier(20_000, 1000), tier(10_000, 500)],
    };
    let events = Given::with(())
        .given_no_previous_events()
        .when(PromotionCommand::CreatePromotion(c))
        .inspect_result()
        .unwrap();
    match &events[..] {
        [PromotionEvent::PromotionCreated(e)] => assert_eq!(
            e.terms.kind,
            DiscountKind::Tiered {
                tiers: vec![tier(10_000, 500), tier(20_000, 1000)]
            }
        ),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn refuses_a_window_that_ends_before_it_starts() {
    refuses_creation(
        |c| c.ends_at = Some(c.starts_at),
        PromotionError::EmptyValidityWindow,
    );
}

#[test]
fn refuses_a_zero_usage_limit() {
    refuses_creation(|c| c.usage_limit = Some(0), PromotionError::ZeroUsageLimit);
    refuses_creation(
        |c| c.per_customer_limit = Some(0),
        PromotionError::ZeroUsageLimit,
    );
}

#[test]
fn refuses_an_empty_target_category() {
    refuses_creation(
        |c| {
            c.target.categories.insert(" ".into());
        },
        PromotionError::EmptyTargetCategory,
    );
}

#[test]
fn reserves_a_redemption_for_an_order() {
    Given::with(())
        .given(vec![created()])
        .when(reserve(1, 1, now()))
        .then_expect_events(vec![PromotionRedemptionReserved::example().into()]);
}

#[test]
fn a_missing_promotion_cannot_be_redeemed() {
    Given::with(())
        .given_no_previous_events()
        .when(reserve(1, 1, now()))
        .then_expect_error(PromotionError::NotFound);
}

#[test]
fn reserving_twice_for_the_same_order_counts_once() {
    Given::with(())
        .given(vec![created(), reserved(1, 1, 1, 1)])
        .when(reserve(1, 1, now()))
        .then_expect_events(vec![]);
}

#[test]
fn an_order_cannot_be_reserved_for_a_second_customer() {
    Given::with(())
        .given(vec![created(), reserved(1, 1, 1, 1)])
        .when(reserve(1, 2, now()))
        .then_expect_error(PromotionError::OrderReservedForAnotherCustomer(customer(1)));
}

#[test]
fn refuses_a_redemption_before_the_window() {
    let starts_at = example_terms().starts_at;
    Given::with(())
        .given(vec![created()])
        .when(reserve(1, 1, starts_at - Duration::seconds(1)))
        .then_expect_error(PromotionError::NotYetActive { starts_at });
}

#[test]
fn refuses_a_redemption_at_or_after_the_end() {
    let ended_at = example_terms().ends_at.unwrap();
    Given::with(())
        .given(vec![created()])
        .when(reserve(1, 1, ended_at))
        .then_expect_error(PromotionError::Expired { ended_at });
}

#[test]
fn refuses_a_redemption_past_the_usage_limit() {
    Given::with(())
        .given(vec![
            created_with(|t| t.usage_limit = Some(2)),
            reserved(1, 1, 1, 1),
            reserved(2, 2, 2, 1),
        ])
        .when(reserve(3, 3, now()))
        .then_expect_error(PromotionError::UsageLimitReached { limit: 2 });
}

#[test]
fn refuses_a_redemption_past_the_per_customer_limit() {
    Given::with(())
        .given(vec![created(), reserved(1, 1, 1, 1)])
        .when(reserve(2, 1, now()))
        .then_expect_error(PromotionError::CustomerLimitReached { limit: 1 });
}

#[test]
fn another_customer_may_still_redeem() {
    Given::with(())
        .given(vec![created(), reserved(1, 1, 1, 1)])
        .when(reserve(2, 2, now()))
        .then_expect_events(vec![reserved(2, 2, 2, 1)]);
}

#[test]
fn a_released_redemption_frees_the_customer_use() {
    Given::with(())
        .given(vec![
            created(),
            reserved(1, 1, 1, 1),
            PromotionRedemptionReleased {
                uses: 0,
                customer_uses: 0,
                ..PromotionRedemptionReleased::example()
            }
            .into(),
        ])
        .when(reserve(2, 1, now()))
        .then_expect_events(vec![reserved(2, 1, 1, 1)]);
}

#[test]
fn releases_a_redemption() {
    Given::with(())
        .given(vec![created(), reserved(1, 1, 1, 1)])
        .when(PromotionCommand::ReleaseRedemption(ReleaseRedemption {
            order_id: order(1),
            at: now(),
        }))
        .then_expect_events(vec![PromotionRedemptionReleased::example().into()]);
}

#[test]
fn releasing_an_order_without_redemption_changes_nothing() {
    Given::with(())
        .given(vec![
            created(),
            reserved(1, 1, 1, 1),
            PromotionRedemptionReleased::example().into(),
        ])
        .when(PromotionCommand::ReleaseRedemption(ReleaseRedemption {
            order_id: order(1),
            at: now(),
        }))
        .then_expect_events(vec![]);
}

#[test]
fn deactivates_a_promotion() {
    Given::with(())
        .given(vec![created(), reserved(1, 1, 1, 1)])
        .when(PromotionCommand::DeactivatePromotion { at: now() })
        .then_expect_events(vec![PromotionDeactivated::example().into()]);
}

#[test]
fn a_missing_promotion_cannot_be_deactivated() {
    Given::with(())
        .given_no_previous_events()
        .when(PromotionCommand::DeactivatePromotion { at: now() })
        .then_expect_error(PromotionError::NotFound);
}

#[test]
fn a_deactivated_promotion_cannot_be_redeemed_or_deactivated_again() {
    let deactivated: PromotionEvent = PromotionDeactivated::example().into();
    Given::with(())
        .given(vec![created(), deactivated.clone()])
        .when(reserve(1, 1, now()))
        .then_expect_error(PromotionError::Deactivated);
    Given::with(())
        .given(vec![created(), deactivated])
        .when(PromotionCommand::DeactivatePromotion { at: later(1) })
        .then_expect_error(PromotionError::Deactivated);
}

#[test]
fn a_deactivated_promotion_still_releases_and_accepts_retries() {
    let deactivated: PromotionEvent = PromotionDeactivated::example().into();
    Given::with(())
        .given(vec![created(), reserved(1, 1, 1, 1), deactivated.clone()])
        .when(reserve(1, 1, now()))
        .then_expect_events(vec![]);
    Given::with(())
        .given(vec![created(), reserved(1, 1, 1, 1), deactivated])
        .when(PromotionCommand::ReleaseRedemption(ReleaseRedemption {
            order_id: order(1),
            at: now(),
        }))
        .then_expect_events(vec![PromotionRedemptionReleased::example().into()]);
}

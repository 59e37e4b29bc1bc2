use super::*;

// ---- enrolment ----

#[test]
fn enrolling_opens_a_bronze_account() {
    Given::with(())
        .given_no_previous_events()
        .when(enroll())
        .then_expect_events(vec![LoyaltyAccountEnrolled::example().into()]);
}

#[test]
fn enrolling_twice_is_refused() {
    refused(vec![enroll()], enroll(), LoyaltyError::AlreadyEnrolled);
}

#[test]
fn an_account_must_be_enrolled_first() {
    refused(vec![], earn(1, 10_000, 0), LoyaltyError::NotEnrolled);
}

#[test]
fn referral_codes_are_validated() {
    let LoyaltyCommand::EnrollAccount(mut c) = enroll() else {
        unreachable!()
    };
    c.referred_by = Some("bad code".into());
    refused(
        vec![],
        LoyaltyCommand::EnrollAccount(c),
        LoyaltyError::InvalidReferralCode("bad code".into()),
    );
}

#[test]
fn a_customer_cannot_be_referred_by_their_own_code() {
    let LoyaltyCommand::EnrollAccount(mut c) = enroll() else {
        unreachable!()
    };
    c.referred_by = Some(c.referral_code.clone());
    refused(
        vec![],
        LoyaltyCommand::EnrollAccount(c),
        LoyaltyError::ReferredBySelf,
    );
}

// ---- earning ----

#[test]
fn earning_applies_the_base_rate_then_the_tier_multiplier_rounding_down() {
    // 129.99 EUR at 1 point per euro: 129 base points.
    for (tier, expected) in [
        (Tier::Bronze, 129),
        (Tier::Silver, 161), // 161.25
        (Tier::Gold, 193),   // 193.5
        (Tier::Platinum, 258),
    ] {
        let mut state = state_after(vec![enroll()]);
        state.tier = tier;
        let events = state.decide(earn(1, 12_999, 0)).unwrap();
        let [LoyaltyEvent::LoyaltyPointsEarned(e)] = &events[..] else {
            panic!("unexpected {events:?}")
        };
        assert_eq!((e.base_points, e.points), (129, expected), "{tier:?}");
        assert_eq!(e.multiplier_percent, tier.multiplier_percent());
        assert_eq!(e.expires_at, a_year_after(days(0)));
    }
}

#[test]
fn the_published_earning_example_is_what_the_decider_produces() {
    let mut state = state_after(vec![enroll()]);
    state.tier = Tier::Silver;
    let events = state.decide(earn(0x101, 12_999, 0)).unwrap();
    assert_eq!(events, vec![LoyaltyPointsEarned::example().into()]);
}

#[test]
fn an_order_earns_only_once() {
    Given::with(())
        .given(history(vec![enroll(), earn(1, 10_000, 0)]))
        .when(earn(1, 10_000, 1))
        .then_expect_events(vec![]);
}

#[test]
fn an_order_below_one_point_earns_nothing_and_opens_no_lot() {
    let events = when(vec![enroll()], earn(1, 99, 0));
    let [LoyaltyEvent::LoyaltyPointsEarned(e)] = &events[..] else {
        panic!("unexpected {events:?}")
    };
    assert_eq!((e.points, e.lot, e.balance), (0, None, 0));
}

#[test]
fn earning_in_another_currency_is_refused() {
    let command = LoyaltyCommand::EarnPoints(EarnPoints {
        order_id: order(1),
        order_amount: Money::new(1000, Currency::USD),
        base_rate: 1,
        at: days(0),
    });
    refused(
        vec![enroll()],
        command,
        LoyaltyError::CurrencyMismatch {
            account: Currency::EUR,
            got: Currency::USD,
        },
    );
}

#[test]
fn earning_needs_a_positive_amount() {
    refused(
        vec![enroll()],
        earn(1, 0, 0),
        LoyaltyError::NonPositiveAmount(eur(0)),
    );
}

#[test]
fn points_beyond_the_counter_range_are_refused() {
    let command = LoyaltyCommand::EarnPoints(EarnPoints {
        order_id: order(1),
        order_amount: eur(i64::MAX),
        base_rate: u32::MAX,
        at: days(0),
    });
    refused(vec![enroll()], command, LoyaltyError::PointsOverflow);
}

// ---- holds ----

#[test]
fn held_points_come_from_the_oldest_lots_first() {
    let events = when(
        vec![enroll(), earn(1, 10_000, 0), earn(2, 20_000, 5)],
        hold(9, 150, 6),
    );
    let [LoyaltyEvent::LoyaltyPointsHeld(e)] = &events[..] else {
        panic!("unexpected {events:?}")
    };
    assert_eq!(
        e.taken,
        vec![
            LotPoints {
                lot: 0,
                points: 100
            },
            LotPoints { lot: 1, points: 50 }
        ]
    );
    assert_eq!(e.balance, 150);
}

#[test]
fn more_points_than_the_balance_cannot_be_held() {
    refused(
        vec![enroll(), earn(1, 10_000, 0)],
        hold(9, 101, 1),
        LoyaltyError::InsufficientPoints {
            requested: 101,
            available: 100,
        },
    );
}

#[test]
fn holding_zero_points_is_refused() {
    refused(
        vec![enroll(), earn(1, 10_000, 0)],
        hold(9, 0, 1),
        LoyaltyError::ZeroPoints,
    );
}

#[test]
fn a_repeated_identical_hold_is_a_no_op_a_different_one_is_refused() {
    let given = vec![enroll(), earn(1, 10_000, 0), hold(9, 40, 1)];
    Given::with(())
        .given(history(given.clone()))
        .when(hold(9, 40, 1))
        .then_expect_events(vec![]);
    refused(
        given,
        hold(9, 50, 1),
        LoyaltyError::HoldAlreadyExists(order(9)),
    );
}

#[test]
fn committing_spends_the_held_points_once() {
    let given = vec![enroll(), earn(1, 10_000, 0), hold(9, 40, 1)];
    let events = when(given.clone(), commit(9));
    let [LoyaltyEvent::LoyaltyHeldPointsRedeemed(e)] = &events[..] else {
        panic!("unexpected {events:?}")
    };
    assert_eq!((e.points, e.balance), (40, 60));
    let mut given = given;
    given.push(commit(9));
    Given::with(())
        .given(history(given))
        .when(commit(9))
        .then_expect_events(vec![]);
}

#[test]
fn committing_an_unknown_hold_is_refused() {
    refused(
        vec![enroll()],
        commit(9),
        LoyaltyError::HoldNotFound(order(9)),
    );
}

#[test]
fn a_returned_hold_cannot_be_committed() {
    refused(
        vec![
            enroll(),
            earn(1, 10_000, 0),
            hold(9, 40, 1),
            give_back(9, 2),
        ],
        commit(9),
        LoyaltyError::HoldAlreadyReturned(order(9)),
    );
}

#[test]
fn returning_restores_the_lots_and_is_idempotent() {
    let given = vec![enroll(), earn(1, 10_000, 0), hold(9, 40, 1)];
    let events = when(given.clone(), give_back(9, 2));
    let [LoyaltyEvent::LoyaltyHeldPointsReturned(e)] = &events[..] else {
        panic!("unexpected {events:?}")
    };
    assert_eq!((e.restored, e.balance), (40, 100));
    let mut given = given;
    given.push(give_back(9, 2));
    Given::with(())
        .given(history(given.clone()))
        .when(give_back(9, 3))
        .then_expect_events(vec![]);
    Given::with(())
        .given(history(given))
        .when(give_back(77, 3))
        .then_expect_events(vec![]);
}

#[test]
fn spent_points_cannot_be_returned() {
    refused(
        vec![enroll(), earn(1, 10_000, 0), hold(9, 40, 1), commit(9)],
        give_back(9, 2),
        LoyaltyError::HoldAlreadyCommitted(order(9)),
    );
}

#[test]
fn points_returned_to_an_expired_lot_are_forfeited() {
    let events = when(
        vec![
            enroll(),
            earn(1, 10_000, 0),
            earn(2, 10_000, 100),
            hold(9, 150, 101),
        ],
        give_back(9, 400),
    );
    let [LoyaltyEvent::LoyaltyHeldPointsReturned(e)] = &events[..] else {
        panic!("unexpected {events:?}")
    };
    assert_eq!((e.restored, e.forfeited, e.balance), (50, 100, 100));
}

// ---- refunds ----

#[test]
fn a_refund_reverses_its_share_rounded_half_to_even() {
    // 100 points for 100.00; a refund of 0.50 is 0.5 points -> 0 (even); 1.50 -> 2.
    let events = when(vec![enroll(), earn(1, 10_000, 0)], reverse(1, 50));
    let [LoyaltyEvent::LoyaltyPointsReversed(e)] = &events[..] else {
        panic!("unexpected {events:?}")
    };
    assert_eq!(e.points_due, 0);
    let events = when(vec![enroll(), earn(1, 10_000, 0)], reverse(1, 150));
    let [LoyaltyEvent::LoyaltyPointsReversed(e)] = &events[..] else {
        panic!("unexpected {events:?}")
    };
    assert_eq!((e.points_due, e.points_reversed, e.balance), (2, 2, 98));
}

#[test]
fn partial_refunds_add_up_to_exactly_what_was_earned() {
    let state = state_after(vec![
        enroll(),
        earn(1, 10_000, 0),
        reverse(1, 3_333),
        reverse(1, 3_333),
        reverse(1, 3_334),
    ]);
    assert_eq!(state.balance, 0);
    assert_eq!(state.orders[&order(1)].points_due, 100);
}

#[test]
fn already_spent_points_are_recorded_as_uncollectable_and_the_balance_stays_at_zero() {
    let events = when(
        vec![enroll(), earn(1, 10_000, 0), hold(9, 70, 1), commit(9)],
        reverse(1, 10_000),
    );
    let [LoyaltyEvent::LoyaltyPointsReversed(e)] = &events[..] else {
        panic!("unexpected {events:?}")
    };
    assert_eq!(
        (e.points_due, e.points_reversed, e.uncollectable),
        (100, 30, 70)
    );
    assert_eq!(e.balance, 0);
}

#[test]
fn a_refund_reverses_only_points_of_its_own_order() {
    let events = when(
        vec![
            enroll(),
            earn(1, 10_000, 0),
            earn(2, 10_000, 1),
            hold(9, 100, 2),
            commit(9),
        ],
        reverse(1, 10_000),
    );
    let [LoyaltyEvent::LoyaltyPointsReversed(e)] = &events[..] else {
        panic!("unexpected {events:?}")
    };
    assert_eq!(
        (e.points_reversed, e.uncollectable, e.balance),
        (0, 100, 100)
    );
}

#[test]
fn an_uncollectable_debt_is_taken_back_when_held_points_return() {
    let events = when(
        vec![
            enroll(),
            earn(1, 10_000, 0),
            hold(9, 70, 1),
            reverse(1, 10_000),
        ],
        give_back(9, 3),
    );
    let [LoyaltyEvent::LoyaltyHeldPointsReturned(e)] = &events[..] else {
        panic!("unexpected {events:?}")
    };
    assert_eq!((e.restored, e.clawed_back, e.balance), (0, 70, 0));
}

#[test]
fn a_refund_of_an_order_that_earned_nothing_here_is_refused() {
    refused(
        vec![enroll()],
        reverse(1, 100),
        LoyaltyError::OrderNotEarned(order(1)),
    );
}

#[test]
fn refunds_cannot_exceed_the_order_amount() {
    refused(
        vec![enroll(), earn(1, 10_000, 0), reverse(1, 6_000)],
        reverse(1, 5_000),
        LoyaltyError::RefundExceedsOrder {
            order_id: order(1),
            order_amount: eur(10_000),
            would_be: eur(11_000),
        },
    );
}

#[test]
fn a_refund_must_be_positive() {
    refused(
        vec![enroll(), earn(1, 10_000, 0)],
        reverse(1, -5),
        LoyaltyError::NonPositiveAmount(eur(-5)),
    );
}

// ---- expiry ----

#[test]
fn lots_expire_twelve_months_after_earning_oldest_first() {
    let given = vec![
        enroll(),
        earn(1, 10_000, 0),
        earn(2, 5_000, 40),
        hold(9, 30, 41),
    ];
    // Just before the first lot's expiry: nothing.
    Given::with(())
        .given(history(given.clone()))
        .when(expire(a_year_after(days(0)) - Duration::seconds(1)))
        .then_expect_events(vec![]);
    let events = when(given, expire(a_year_after(days(0))));
    let [LoyaltyEvent::LoyaltyPointsExpired(e)] = &events[..] else {
        panic!("unexpected {events:?}")
    };
    // The hold took 30 from the older lot, so 70 of it expire; the newer lot stays.
    assert_eq!(e.lots, vec![LotPoints { lot: 0, points: 70 }]);
    assert_eq!(e.balance, 50);
}

// ---- tiers ----

#[test]
fn the_tier_rises_with_spend_and_falls_when_spend_leaves_the_window() {
    let given = vec![enroll(), earn(1, 60_000, 0), earn(2, 100_000, 200)];
    let events = when(given.clone(), recalculate(days(201)));
    let [LoyaltyEvent::LoyaltyTierChanged(e)] = &events[..] else {
        panic!("unexpected {events:?}")
    };
    assert_eq!(
        (e.from, e.to, e.rolling_spend),
        (Tier::Bronze, Tier::Gold, eur(160_000))
    );

    let mut given = given;
    given.push(recalculate(days(201)));
    // A year after the first order only the second counts: gold falls to silver.
    let events = when(given.clone(), recalculate(a_year_after(days(0))));
    let [LoyaltyEvent::LoyaltyTierChanged(e)] = &events[..] else {
        panic!("unexpected {events:?}")
    };
    assert_eq!((e.from, e.to), (Tier::Gold, Tier::Silver));

    // Refunds lower the spend too.
    given.push(reverse(1, 60_000));
    given.push(reverse(2, 60_000));
    let events = when(given, recalculate(days(202)));
    let [LoyaltyEvent::LoyaltyTierChanged(e)] = &events[..] else {
        panic!("unexpected {events:?}")
    };
    assert_eq!((e.to, e.rolling_spend), (Tier::Bronze, eur(40_000)));
}

#[test]
fn an_unchanged_tier_records_nothing() {
    Given::with(())
        .given(history(vec![enroll(), earn(1, 100, 0)]))
        .when(recalculate(days(1)))
        .then_expect_events(vec![]);
}

#[test]
fn tier_thresholds_must_rise() {
    let command = LoyaltyCommand::RecalculateTier(RecalculateTier {
        thresholds: Some(TierThresholds {
            silver: 100,
            gold: 100,
            platinum: 500,
        }),
        now: days(1),
    });
    refused(
        vec![enroll()],
        command,
        LoyaltyError::InvalidTierThresholds {
            silver: 100,
            gold: 100,
            platinum: 500,
        },
    );
}

// ---- referrals and campaigns ----

#[test]
fn a_referral_is_rewarded_once_per_referred_customer() {
    let events = when(vec![enroll()], referral(2, 500));
    let [LoyaltyEvent::LoyaltyReferralRewarded(e)] = &events[..] else {
        panic!("unexpected {events:?}")
    };
    assert_eq!((e.points, e.lot, e.balance), (500, 0, 500));
    Given::with(())
        .given(history(vec![enroll(), referral(2, 500)]))
        .when(referral(2, 500))
        .then_expect_events(vec![]);
}

#[test]
fn a_customer_is_not_rewarded_for_referring_themselves() {
    let own = LoyaltyAccountEnrolled::example().customer_id;
    let command = LoyaltyCommand::RewardReferral(RewardReferral {
        referred_customer: own,
        referral_code: LoyaltyAccountEnrolled::example().referral_code,
        first_order_id: order(5),
        points: 500,
        at: days(1),
    });
    refused(vec![enroll()], command, LoyaltyError::SelfReferral);
}

#[test]
fn campaign_bonus_points_are_credited_once_per_campaign() {
    let events = when(vec![enroll(), earn(1, 10_000, 0)], bonus(1, 250, 1));
    let [LoyaltyEvent::LoyaltyCampaignBonusAwarded(e)] = &events[..] else {
        panic!("unexpected {events:?}")
    };
    assert_eq!((e.lot, e.balance), (1, 350));
    Given::with(())
        .given(history(vec![enroll(), bonus(1, 250, 1)]))
        .when(bonus(1, 250, 2))
        .then_expect_events(vec![]);
}

#[test]
fn a_campaign_bonus_of_zero_points_is_refused() {
    refused(vec![enroll()], bonus(1, 0, 1), LoyaltyError::ZeroPoints);
}

#[test]
fn the_balance_is_the_sum_of_unexpired_lots() {
    let state = state_after(vec![
        enroll(),
        earn(1, 10_000, 0),
        bonus(1, 250, 10),
        hold(9, 120, 11),
        expire(a_year_after(days(0))),
    ]);
    assert_eq!(state.balance, 250 - 20);
    assert_eq!(state.balance, unexpired_remaining(&state));
}

#[test]
fn a_referral_made_with_another_code_is_not_rewarded_here() {
    let command = LoyaltyCommand::RewardReferral(RewardReferral {
        referred_customer: customer(2),
        referral_code: "SOMEONE-ELSE".into(),
        first_order_id: order(5),
        points: 500,
        at: days(1),
    });
    refused(
        vec![enroll()],
        command,
        LoyaltyError::ReferralCodeNotOurs("SOMEONE-ELSE".into()),
    );
}

#[test]
fn points_past_their_expiry_cannot_be_held_even_before_they_are_expired() {
    refused(
        vec![enroll(), earn(1, 10_000, 0), earn(2, 5_000, 100)],
        hold(9, 60, 366),
        LoyaltyError::InsufficientPoints {
            requested: 60,
            available: 50,
        },
    );
}

fn enroll_referred(referred_by: Option<&str>) -> LoyaltyCommand {
    let e = LoyaltyAccountEnrolled::example();
    LoyaltyCommand::EnrollAccount(EnrollAccount {
        account_id: e.account_id,
        customer_id: e.customer_id,
        referral_code: e.referral_code,
        referred_by: referred_by.map(String::from),
        currency: e.currency,
        at: e.at,
    })
}

fn qualify(n: u128) -> LoyaltyCommand {
    LoyaltyCommand::QualifyReferral(QualifyReferral {
        order_id: order(n),
        at: days(3),
    })
}

#[test]
fn the_first_completed_order_of_a_referred_customer_qualifies_the_referrer_once() {
    let events = when(vec![enroll_referred(Some("REFERRER-1"))], qualify(1));
    let [LoyaltyEvent::LoyaltyReferralQualified(e)] = &events[..] else {
        panic!("unexpected {events:?}")
    };
    assert_eq!(e.referred_by, "REFERRER-1");
    assert_eq!(e.first_order_id, order(1));
    assert_eq!(e.customer_id, LoyaltyAccountEnrolled::example().customer_id);
    Given::with(())
        .given(history(vec![
            enroll_referred(Some("REFERRER-1")),
            qualify(1),
        ]))
        .when(qualify(2))
        .then_expect_events(vec![]);
    // Nobody referred this customer: nothing to qualify.
    Given::with(())
        .given(history(vec![enroll_referred(None)]))
        .when(qualify(1))
        .then_expect_events(vec![]);
    refused(vec![], qualify(1), LoyaltyError::NotEnrolled);
}

use cqrs_es::test::TestFramework;
use proptest::prelude::*;

use super::event::{eur, example_order_id, example_payment_id, example_time};
use super::fraud::assess;
use super::*;
use crate::{CountryCode, Currency, Decider, EventExample, Money, MoneyError, RefundId};

type Given = TestFramework<Payment>;

fn t() -> chrono::DateTime<chrono::Utc> {
    example_time()
}

fn initiate() -> InitiatePayment {
    let e = PaymentInitiated::example();
    InitiatePayment {
        payment_id: e.payment_id,
        order_id: e.order_id,
        amount: e.amount,
        method_token: e.method_token,
        provider: e.provider,
        at: e.at,
    }
}

fn clean_inputs() -> FraudInputs {
    FraudInputs {
        customer_orders_last_24h: 0,
        billing_country: CountryCode("DE".into()),
        shipping_country: CountryCode("DE".into()),
        first_order: false,
        email: "ada@example.org".into(),
        failed_attempts: 0,
    }
}

fn assess_cmd(inputs: FraudInputs) -> PaymentCommand {
    PaymentCommand::AssessFraud(AssessFraud {
        inputs,
        policy: None,
        at: t(),
    })
}

fn initiated() -> Vec<PaymentEvent> {
    vec![PaymentInitiated::example().into()]
}

fn assessed(outcome: FraudOutcome) -> Vec<PaymentEvent> {
    let mut e = initiated();
    e.push(
        PaymentFraudAssessed {
            outcome,
            ..PaymentFraudAssessed::example()
        }
        .into(),
    );
    e
}

fn authorized() -> Vec<PaymentEvent> {
    let mut e = assessed(FraudOutcome::Passed);
    e.push(PaymentAuthorized::example().into());
    e
}

fn captured() -> Vec<PaymentEvent> {
    let mut e = authorized();
    e.push(PaymentCaptured::example().into());
    e
}

fn authorize(amount: Money) -> PaymentCommand {
    PaymentCommand::AuthorizePayment(AuthorizePayment {
        provider_reference: "pi_3Nx8Kq".into(),
        amount,
        at: t(),
    })
}

fn capture(amount: Money) -> PaymentCommand {
    PaymentCommand::CapturePayment(CapturePayment { amount, at: t() })
}

fn refund_id(n: u128) -> RefundId {
    RefundId(uuid::Uuid::from_u128(
        0x0192_0000_0000_7000_8000_0000_0006_0000 + n,
    ))
}

fn refund(n: u128, amount: Money) -> PaymentCommand {
    PaymentCommand::RefundPayment(RefundPayment {
        refund_id: refund_id(n),
        amount,
        at: t(),
    })
}

fn chargeback(amount: Money) -> PaymentCommand {
    PaymentCommand::RecordChargeback(RecordChargeback {
        reference: "dp_1Ab2Cd".into(),
        amount,
        reason_code: "fraudulent".into(),
        at: t(),
    })
}

// ---- initiation ----

#[test]
fn initiates_a_payment() {
    Given::with(())
        .given_no_previous_events()
        .when(PaymentCommand::InitiatePayment(initiate()))
        .then_expect_events(initiated());
}

#[test]
fn a_payment_is_initiated_once() {
    Given::with(())
        .given(initiated())
        .when(PaymentCommand::InitiatePayment(initiate()))
        .then_expect_error(PaymentError::AlreadyInitiated);
}

#[test]
fn commands_need_an_initiated_payment() {
    Given::with(())
        .given_no_previous_events()
        .when(capture(eur(1)))
        .then_expect_error(PaymentError::NotFound);
}

#[test]
fn a_payment_amount_is_positive() {
    let mut c = initiate();
    c.amount = eur(0);
    Given::with(())
        .given_no_previous_events()
        .when(PaymentCommand::InitiatePayment(c))
        .then_expect_error(PaymentError::NonPositiveAmount(eur(0)));
}

#[test]
fn a_payment_needs_a_method_token() {
    let mut c = initiate();
    c.method_token = " ".into();
    Given::with(())
        .given_no_previous_events()
        .when(PaymentCommand::InitiatePayment(c))
        .then_expect_error(PaymentError::MissingMethodToken);
}

#[test]
fn a_payment_needs_a_provider() {
    let mut c = initiate();
    c.provider = String::new();
    Given::with(())
        .given_no_previous_events()
        .when(PaymentCommand::InitiatePayment(c))
        .then_expect_error(PaymentError::MissingProvider);
}

// ---- fraud ----

#[test]
fn a_clean_payment_passes_the_fraud_check() {
    Given::with(())
        .given(initiated())
        .when(assess_cmd(clean_inputs()))
        .then_expect_events(vec![PaymentFraudAssessed {
            score: 0,
            fired: vec![],
            outcome: FraudOutcome::Passed,
            ..PaymentFraudAssessed::example()
        }
        .into()]);
}

#[test]
fn every_rule_fires_with_its_points_and_the_score_is_clamped() {
    let policy = FraudPolicy::default_for(Currency::EUR);
    let inputs = FraudInputs {
        customer_orders_last_24h: 5,
        billing_country: CountryCode("DE".into()),
        shipping_country: CountryCode("NG".into()),
        first_order: true,
        email: "x@Mailinator.com".into(),
        failed_attempts: 4,
    };
    let a = assess(eur(150_000), &inputs, &policy).unwrap();
    let rules: Vec<FraudRule> = a.fired.iter().map(|f| f.rule).collect();
    assert_eq!(
        rules,
        vec![
            FraudRule::HighAmount,
            FraudRule::CustomerVelocity,
            FraudRule::CountryMismatch,
            FraudRule::HighFirstOrder,
            FraudRule::DisposableEmail,
            FraudRule::RepeatedFailedAttempts,
        ]
    );
    assert_eq!(
        a.fired.iter().map(|f| u32::from(f.points)).sum::<u32>(),
        125
    );
    assert_eq!(a.score, 100);
    assert_eq!(a.outcome, FraudOutcome::Rejected);
}

#[test]
fn each_rule_fires_alone() {
    let policy = FraudPolicy::default_for(Currency::EUR);
    let cases: Vec<(Money, FraudInputs, FraudRule, u8)> = vec![
        (eur(100_001), clean_inputs(), FraudRule::HighAmount, 25),
        (
            eur(100),
            FraudInputs {
                customer_orders_last_24h: 3,
                ..clean_inputs()
            },
            FraudRule::CustomerVelocity,
            20,
        ),
        (
            eur(100),
            FraudInputs {
                shipping_country: CountryCode("FR".into()),
                ..clean_inputs()
            },
            FraudRule::CountryMismatch,
            15,
        ),
        (
            eur(30_001),
            FraudInputs {
                first_order: true,
                ..clean_inputs()
            },
            FraudRule::HighFirstOrder,
            20,
        ),
        (
            eur(100),
            FraudInputs {
                email: "a@yopmail.com".into(),
                ..clean_inputs()
            },
            FraudRule::DisposableEmail,
            20,
        ),
        (
            eur(100),
            FraudInputs {
                failed_attempts: 3,
                ..clean_inputs()
            },
            FraudRule::RepeatedFailedAttempts,
            25,
        ),
    ];
    for (amount, inputs, rule, points) in cases {
        let a = assess(amount, &inputs, &policy).unwrap();
        assert_eq!(a.fired, vec![FiredFraudRule { rule, points }], "{rule:?}");
        assert_eq!(a.score, points);
        assert_eq!(a.outcome, FraudOutcome::Passed);
    }
    // Thresholds are strict: exactly 1,000.00 is not a high amount.
    assert!(assess(eur(100_000), &clean_inputs(), &policy)
        .unwrap()
        .fired
        .is_empty());
}

#[test]
fn a_score_in_the_review_band_requires_review() {
    let inputs = FraudInputs {
        failed_attempts: 3,
        shipping_country: CountryCode("FR".into()),
        ..clean_inputs()
    };
    let events = Given::with(())
        .given(initiated())
        .when(assess_cmd(inputs))
        .inspect_result()
        .unwrap();
    match &events[..] {
        [PaymentEvent::PaymentFraudAssessed(e)] => {
            assert_eq!(e.score, 40);
            assert_eq!(e.outcome, FraudOutcome::ReviewRequired);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn the_policy_in_the_command_overrides_the_default() {
    let mut policy = FraudPolicy::default_for(Currency::EUR);
    policy.country_mismatch_points = 80;
    let inputs = FraudInputs {
        shipping_country: CountryCode("FR".into()),
        ..clean_inputs()
    };
    let events = Given::with(())
        .given(initiated())
        .when(PaymentCommand::AssessFraud(AssessFraud {
            inputs,
            policy: Some(policy),
            at: t(),
        }))
        .inspect_result()
        .unwrap();
    match &events[..] {
        [PaymentEvent::PaymentFraudAssessed(e)] => {
            assert_eq!(e.score, 80);
            assert_eq!(e.outcome, FraudOutcome::Rejected);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn an_inconsistent_fraud_policy_is_refused() {
    let mut policy = FraudPolicy::default_for(Currency::EUR);
    policy.review_from = 90;
    policy.reject_above = 50;
    Given::with(())
        .given(initiated())
        .when(PaymentCommand::AssessFraud(AssessFraud {
            inputs: clean_inputs(),
            policy: Some(policy),
            at: t(),
        }))
        .then_expect_error(PaymentError::InconsistentFraudPolicy);
}

#[test]
fn a_policy_in_another_currency_is_a_money_error() {
    Given::with(())
        .given(initiated())
        .when(PaymentCommand::AssessFraud(AssessFraud {
            inputs: clean_inputs(),
            policy: Some(FraudPolicy::default_for(Currency::USD)),
            at: t(),
        }))
        .then_expect_error(PaymentError::Money(MoneyError::CurrencyMismatch {
            left: Currency::EUR,
            right: Currency::USD,
        }));
}

#[test]
fn fraud_is_assessed_once() {
    Given::with(())
        .given(assessed(FraudOutcome::Passed))
        .when(assess_cmd(clean_inputs()))
        .then_expect_error(PaymentError::FraudAlreadyAssessed);
}

#[test]
fn authorization_needs_a_fraud_check() {
    Given::with(())
        .given(initiated())
        .when(authorize(eur(5_997)))
        .then_expect_error(PaymentError::FraudNotAssessed);
}

#[test]
fn a_fraud_rejected_payment_cannot_proceed() {
    Given::with(())
        .given(assessed(FraudOutcome::Rejected))
        .when(authorize(eur(5_997)))
        .then_expect_error(PaymentError::FraudRejected);
    Given::with(())
        .given(assessed(FraudOutcome::Rejected))
        .when(capture(eur(1)))
        .then_expect_error(PaymentError::FraudRejected);
}

#[test]
fn a_payment_in_review_waits_for_the_reviewer() {
    Given::with(())
        .given(assessed(FraudOutcome::ReviewRequired))
        .when(authorize(eur(5_997)))
        .then_expect_error(PaymentError::FraudReviewPending);
}

#[test]
fn an_approved_review_lets_the_payment_proceed_and_a_refused_one_rejects_it() {
    let mut events = assessed(FraudOutcome::ReviewRequired);
    events.push(PaymentFraudReviewed::example().into());
    Given::with(())
        .given(events)
        .when(authorize(eur(5_997)))
        .then_expect_events(vec![PaymentAuthorized::example().into()]);
    let mut events = assessed(FraudOutcome::ReviewRequired);
    events.push(
        PaymentFraudReviewed {
            approved: false,
            ..PaymentFraudReviewed::example()
        }
        .into(),
    );
    Given::with(())
        .given(events)
        .when(authorize(eur(5_997)))
        .then_expect_error(PaymentError::FraudRejected);
}

#[test]
fn only_a_payment_in_review_can_be_reviewed() {
    Given::with(())
        .given(assessed(FraudOutcome::Passed))
        .when(PaymentCommand::ResolveFraudReview(ResolveFraudReview {
            approved: true,
            reviewer: "risk".into(),
            at: t(),
        }))
        .then_expect_error(PaymentError::NoFraudReviewPending);
}

// ---- authorization ----

#[test]
fn a_3ds_challenge_then_authorization() {
    let action = PaymentActionRequired::example();
    Given::with(())
        .given(assessed(FraudOutcome::Passed))
        .when(PaymentCommand::RequireAction(RequireAction {
            challenge_id: action.challenge_id.clone(),
            redirect_url: action.redirect_url.clone(),
            at: t(),
        }))
        .then_expect_events(vec![action.clone().into()]);
    let mut events = assessed(FraudOutcome::Passed);
    events.push(action.into());
    Given::with(())
        .given(events)
        .when(authorize(eur(5_997)))
        .then_expect_events(vec![PaymentAuthorized::example().into()]);
}

#[test]
fn an_authorized_payment_is_not_authorized_again() {
    Given::with(())
        .given(authorized())
        .when(authorize(eur(5_997)))
        .then_expect_error(PaymentError::NotAwaitingAuthorization(
            PaymentStatus::Authorized,
        ));
}

#[test]
fn a_declined_payment_cannot_be_authorized() {
    let mut events = assessed(FraudOutcome::Passed);
    events.push(PaymentDeclined::example().into());
    Given::with(())
        .given(events)
        .when(authorize(eur(5_997)))
        .then_expect_error(PaymentError::NotAwaitingAuthorization(
            PaymentStatus::Declined,
        ));
}

#[test]
fn an_authorization_needs_the_provider_reference() {
    Given::with(())
        .given(assessed(FraudOutcome::Passed))
        .when(PaymentCommand::AuthorizePayment(AuthorizePayment {
            provider_reference: String::new(),
            amount: eur(5_997),
            at: t(),
        }))
        .then_expect_error(PaymentError::MissingProviderReference);
}

#[test]
fn an_authorization_cannot_exceed_the_payment_amount() {
    Given::with(())
        .given(assessed(FraudOutcome::Passed))
        .when(authorize(eur(6_000)))
        .then_expect_error(PaymentError::AuthorizationExceedsAmount {
            amount: eur(5_997),
            requested: eur(6_000),
        });
}

// ---- capture, void, refund, chargeback ----

#[test]
fn partial_captures_add_up() {
    Given::with(())
        .given(authorized())
        .when(capture(eur(3_998)))
        .then_expect_events(vec![PaymentCaptured::example().into()]);
    Given::with(())
        .given(captured())
        .when(capture(eur(1_999)))
        .then_expect_events(vec![PaymentCaptured {
            amount: eur(1_999),
            captured_total: eur(5_997),
            capturable_remaining: eur(0),
            ..PaymentCaptured::example()
        }
        .into()]);
}

#[test]
fn captures_cannot_exceed_the_authorization() {
    Given::with(())
        .given(captured())
        .when(capture(eur(2_000)))
        .then_expect_error(PaymentError::CaptureExceedsAuthorized {
            capturable: eur(1_999),
            requested: eur(2_000),
        });
}

#[test]
fn capture_needs_an_authorization() {
    Given::with(())
        .given(assessed(FraudOutcome::Passed))
        .when(capture(eur(1)))
        .then_expect_error(PaymentError::NotAuthorized(
            PaymentStatus::AwaitingAuthorization,
        ));
}

#[test]
fn capture_in_another_currency_is_a_money_error() {
    Given::with(())
        .given(authorized())
        .when(capture(Money::new(100, Currency::USD)))
        .then_expect_error(PaymentError::Money(MoneyError::CurrencyMismatch {
            left: Currency::EUR,
            right: Currency::USD,
        }));
}

#[test]
fn a_capture_is_positive() {
    Given::with(())
        .given(authorized())
        .when(capture(eur(-5)))
        .then_expect_error(PaymentError::NonPositiveAmount(eur(-5)));
}

#[test]
fn void_releases_an_uncaptured_authorization() {
    Given::with(())
        .given(authorized())
        .when(PaymentCommand::VoidPayment { at: t() })
        .then_expect_events(vec![PaymentVoided::example().into()]);
    let mut events = authorized();
    events.push(PaymentVoided::example().into());
    Given::with(())
        .given(events)
        .when(capture(eur(1)))
        .then_expect_error(PaymentError::NotAuthorized(PaymentStatus::Voided));
}

#[test]
fn void_is_refused_once_something_was_captured() {
    Given::with(())
        .given(captured())
        .when(PaymentCommand::VoidPayment { at: t() })
        .then_expect_error(PaymentError::VoidAfterCapture {
            captured: eur(3_998),
        });
}

#[test]
fn partial_refunds_add_up_and_a_repeated_refund_id_is_a_no_op() {
    Given::with(())
        .given(captured())
        .when(refund(1, eur(1_999)))
        .then_expect_events(vec![PaymentRefunded::example().into()]);
    let mut events = captured();
    events.push(PaymentRefunded::example().into());
    Given::with(())
        .given(events.clone())
        .when(refund(1, eur(1_999)))
        .then_expect_events(vec![]);
    Given::with(())
        .given(events)
        .when(refund(2, eur(1_999)))
        .then_expect_events(vec![PaymentRefunded {
            refund_id: refund_id(2),
            refunded_total: eur(3_998),
            refundable_remaining: eur(0),
            ..PaymentRefunded::example()
        }
        .into()]);
}

#[test]
fn refunds_cannot_exceed_what_was_captured() {
    Given::with(())
        .given(captured())
        .when(refund(1, eur(3_999)))
        .then_expect_error(PaymentError::RefundExceedsCaptured {
            refundable: eur(3_998),
            requested: eur(3_999),
        });
    Given::with(())
        .given(authorized())
        .when(refund(1, eur(1)))
        .then_expect_error(PaymentError::RefundExceedsCaptured {
            refundable: eur(0),
            requested: eur(1),
        });
}

#[test]
fn a_chargeback_takes_captured_money_back() {
    Given::with(())
        .given(captured())
        .when(chargeback(eur(1_999)))
        .then_expect_events(vec![PaymentChargebackRecorded::example().into()]);
    let mut events = captured();
    events.push(PaymentChargebackRecorded::example().into());
    // Money charged back can no longer be refunded.
    Given::with(())
        .given(events)
        .when(refund(1, eur(2_000)))
        .then_expect_error(PaymentError::RefundExceedsCaptured {
            refundable: eur(1_999),
            requested: eur(2_000),
        });
}

#[test]
fn a_chargeback_cannot_exceed_the_money_held() {
    let mut events = captured();
    events.push(PaymentRefunded::example().into());
    Given::with(())
        .given(events)
        .when(chargeback(eur(2_000)))
        .then_expect_error(PaymentError::ChargebackExceedsCaptured {
            disputable: eur(1_999),
            requested: eur(2_000),
        });
}

// ---- invariants ----

#[derive(Debug, Clone)]
enum Step {
    Capture(i64),
    Refund(u128, i64),
    Chargeback(i64),
    Void,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (-100i64..4_000).prop_map(Step::Capture),
        (0u128..6, -100i64..4_000).prop_map(|(id, a)| Step::Refund(id, a)),
        (-100i64..3_000).prop_map(Step::Chargeback),
        Just(Step::Void),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn captured_never_exceeds_authorized_and_refunded_never_exceeds_captured(
        authorized_amount in 1i64..=5_997,
        steps in proptest::collection::vec(step(), 0..40),
    ) {
        let mut state = Payment::default();
        let mut history = assessed(FraudOutcome::Passed);
        history.push(PaymentAuthorized { amount: eur(authorized_amount), ..PaymentAuthorized::example() }.into());
        for e in &history {
            state.evolve(e);
        }
        for s in steps {
            let cmd = match s {
                Step::Capture(a) => capture(eur(a)),
                Step::Refund(id, a) => refund(id, eur(a)),
                Step::Chargeback(a) => chargeback(eur(a)),
                Step::Void => PaymentCommand::VoidPayment { at: t() },
            };
            if let Ok(events) = state.decide(cmd) {
                for e in &events {
                    state.evolve(e);
                }
            }
            let l = state.ledger.clone().expect("initiated");
            prop_assert!(l.captured.amount <= l.authorized.amount);
            prop_assert!(l.refunded.amount <= l.captured.amount);
            prop_assert!(l.refunded.amount + l.charged_back.amount <= l.captured.amount);
            prop_assert!(l.captured.amount >= 0 && l.refunded.amount >= 0);
            prop_assert_eq!(l.payment_id, example_payment_id());
            prop_assert_eq!(l.order_id, example_order_id());
        }
    }
}

fn adjust(amount: Money) -> PaymentCommand {
    PaymentCommand::AdjustAuthorization(AdjustAuthorization { amount, at: t() })
}

#[test]
fn an_authorization_moves_to_a_new_total_never_below_the_captured_money() {
    let before = PaymentAuthorized::example().amount;
    Given::with(())
        .given(authorized())
        .when(adjust(eur(7_996)))
        .then_expect_events(vec![PaymentAuthorizationAdjusted {
            payment_id: example_payment_id(),
            order_id: example_order_id(),
            previous_authorized: before,
            authorized: eur(7_996),
            at: t(),
        }
        .into()]);
    Given::with(())
        .given(authorized())
        .when(adjust(before))
        .then_expect_events(vec![]);
    let captured_amount = PaymentCaptured::example().captured_total;
    Given::with(())
        .given(captured())
        .when(adjust(eur(1)))
        .then_expect_error(PaymentError::AuthorizationBelowCaptured {
            captured: captured_amount,
            requested: eur(1),
        });
    Given::with(())
        .given(initiated())
        .when(adjust(eur(7_996)))
        .then_expect_error(PaymentError::NotAuthorized(
            PaymentStatus::AwaitingFraudCheck,
        ));
    let mut after = authorized();
    after.push(PaymentAuthorizationAdjusted::example().into());
    let mut state = Payment::default();
    for e in &after {
        state.evolve(e);
    }
    let ledger = state.ledger.unwrap();
    assert_eq!(ledger.authorized, eur(7_996));
    assert_eq!(ledger.capturable().unwrap(), eur(7_996));
}

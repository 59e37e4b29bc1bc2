use chrono::{DateTime, TimeZone, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{FiredFraudRule, FraudOutcome, FraudRule};
use crate::{Currency, EventExample, Money, OrderId, PaymentId, RefundId};

crate::domain_events! {
    /// Events of the payment aggregate.
    pub enum PaymentEvent {
        PaymentInitiated(PaymentInitiated),
        PaymentFraudAssessed(PaymentFraudAssessed),
        PaymentFraudReviewed(PaymentFraudReviewed),
        PaymentActionRequired(PaymentActionRequired),
        PaymentAuthorized(PaymentAuthorized),
        PaymentAuthorizationAdjusted(PaymentAuthorizationAdjusted),
        PaymentDeclined(PaymentDeclined),
        PaymentCaptured(PaymentCaptured),
        PaymentVoided(PaymentVoided),
        PaymentRefunded(PaymentRefunded),
        PaymentChargebackRecorded(PaymentChargebackRecorded),
    }
}

/// A payment for an order was started with a provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PaymentInitiated {
    pub payment_id: PaymentId,
    pub order_id: OrderId,
    pub amount: Money,
    pub method_token: String,
    pub provider: String,
    pub at: DateTime<Utc>,
}

/// The payment was scored; `fired` lists every rule that added points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PaymentFraudAssessed {
    pub payment_id: PaymentId,
    pub order_id: OrderId,
    /// 0-100.
    pub score: u8,
    pub fired: Vec<FiredFraudRule>,
    pub outcome: FraudOutcome,
    pub at: DateTime<Utc>,
}

/// A person decided on a payment in the review band.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PaymentFraudReviewed {
    pub payment_id: PaymentId,
    pub order_id: OrderId,
    pub approved: bool,
    pub reviewer: String,
    pub at: DateTime<Utc>,
}

/// The provider asked the customer to complete a 3-D Secure challenge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PaymentActionRequired {
    pub payment_id: PaymentId,
    pub order_id: OrderId,
    pub challenge_id: String,
    pub redirect_url: String,
    pub at: DateTime<Utc>,
}

/// The provider reserved `amount` on the customer's method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PaymentAuthorized {
    pub payment_id: PaymentId,
    pub order_id: OrderId,
    pub provider_reference: String,
    pub amount: Money,
    pub at: DateTime<Utc>,
}

/// An authorization was moved to a new total after the order was edited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PaymentAuthorizationAdjusted {
    pub payment_id: PaymentId,
    pub order_id: OrderId,
    pub previous_authorized: Money,
    pub authorized: Money,
    pub at: DateTime<Utc>,
}

/// The provider refused the payment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PaymentDeclined {
    pub payment_id: PaymentId,
    pub order_id: OrderId,
    pub reason_code: String,
    pub at: DateTime<Utc>,
}

/// Part or all of the authorization was captured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PaymentCaptured {
    pub payment_id: PaymentId,
    pub order_id: OrderId,
    pub amount: Money,
    /// Sum of all captures including this one.
    pub captured_total: Money,
    /// Authorized and still capturable after this capture.
    pub capturable_remaining: Money,
    pub at: DateTime<Utc>,
}

/// The authorization was released without capturing anything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PaymentVoided {
    pub payment_id: PaymentId,
    pub order_id: OrderId,
    /// The authorized amount given back to the customer.
    pub released: Money,
    pub at: DateTime<Utc>,
}

/// Captured money was given back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PaymentRefunded {
    pub payment_id: PaymentId,
    pub order_id: OrderId,
    pub refund_id: RefundId,
    pub amount: Money,
    /// Sum of all refunds including this one.
    pub refunded_total: Money,
    /// Captured money still held after this refund.
    pub refundable_remaining: Money,
    pub at: DateTime<Utc>,
}

/// The issuer took captured money back on a dispute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PaymentChargebackRecorded {
    pub payment_id: PaymentId,
    pub order_id: OrderId,
    pub reference: String,
    pub amount: Money,
    pub reason_code: String,
    /// Sum of all chargebacks including this one.
    pub charged_back_total: Money,
    pub at: DateTime<Utc>,
}

pub(crate) fn example_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 14, 5, 0).unwrap()
}

pub(crate) fn example_payment_id() -> PaymentId {
    PaymentId(uuid::Uuid::from_u128(
        0x0192_0000_0000_7000_8000_0000_0004_0001,
    ))
}

pub(crate) fn example_order_id() -> OrderId {
    OrderId(uuid::Uuid::from_u128(
        0x0192_0000_0000_7000_8000_0000_0003_0001,
    ))
}

pub(crate) fn eur(amount: i64) -> Money {
    Money::new(amount, Currency::EUR)
}

impl EventExample for PaymentInitiated {
    fn example() -> Self {
        Self {
            payment_id: example_payment_id(),
            order_id: example_order_id(),
            amount: eur(5_997),
            method_token: "pm_1Q2w3E4r5T6y".into(),
            provider: "stripe".into(),
            at: example_time(),
        }
    }
}

impl EventExample for PaymentFraudAssessed {
    fn example() -> Self {
        Self {
            payment_id: example_payment_id(),
            order_id: example_order_id(),
            score: 15,
            fired: vec![FiredFraudRule {
                rule: FraudRule::CountryMismatch,
                points: 15,
            }],
            outcome: FraudOutcome::Passed,
            at: example_time(),
        }
    }
}

impl EventExample for PaymentFraudReviewed {
    fn example() -> Self {
        Self {
            payment_id: example_payment_id(),
            order_id: example_order_id(),
            approved: true,
            reviewer: "risk-team@shop.example".into(),
            at: example_time(),
        }
    }
}

impl EventExample for PaymentActionRequired {
    fn example() -> Self {
        Self {
            payment_id: example_payment_id(),
            order_id: example_order_id(),
            challenge_id: "3ds_9f8e7d".into(),
            redirect_url: "https://acs.bank.example/challenge/3ds_9f8e7d".into(),
            at: example_time(),
        }
    }
}

impl EventExample for PaymentAuthorized {
    fn example() -> Self {
        Self {
            payment_id: example_payment_id(),
            order_id: example_order_id(),
            provider_reference: "pi_3Nx8Kq".into(),
            amount: eur(5_997),
            at: example_time(),
        }
    }
}

impl EventExample for PaymentDeclined {
    fn example() -> Self {
        Self {
            payment_id: example_payment_id(),
            order_id: example_order_id(),
            reason_code: "insufficient_funds".into(),
            at: example_time(),
        }
    }
}

impl EventExample for PaymentCaptured {
    fn example() -> Self {
        Self {
            payment_id: example_payment_id(),
            order_id: example_order_id(),
            amount: eur(3_998),
            captured_total: eur(3_998),
            capturable_remaining: eur(1_999),
            at: example_time(),
        }
    }
}

impl EventExample for PaymentAuthorizationAdjusted {
    fn example() -> Self {
        Self {
            payment_id: example_payment_id(),
            order_id: example_order_id(),
            previous_authorized: eur(5_997),
            authorized: eur(7_996),
            at: example_time(),
        }
    }
}

impl EventExample for PaymentVoided {
    fn example() -> Self {
        Self {
            payment_id: example_payment_id(),
            order_id: example_order_id(),
            released: eur(5_997),
            at: example_time(),
        }
    }
}

impl EventExample for PaymentRefunded {
    fn example() -> Self {
        Self {
            payment_id: example_payment_id(),
            order_id: example_order_id(),
            refund_id: RefundId(uuid::Uuid::from_u128(
                0x0192_0000_0000_7000_8000_0000_0006_0001,
            )),
            amount: eur(1_999),
            refunded_total: eur(1_999),
            refundable_remaining: eur(1_999),
            at: example_time(),
        }
    }
}

impl EventExample for PaymentChargebackRecorded {
    fn example() -> Self {
        Self {
            payment_id: example_payment_id(),
            order_id: example_order_id(),
            reference: "dp_1Ab2Cd".into(),
            amount: eur(1_999),
            reason_code: "fraudulent".into(),
            charged_back_total: eur(1_999),
            at: example_time(),
        }
    }
}

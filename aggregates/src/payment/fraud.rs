//! The fraud scorer: six rules, each adding points, summed and clamped to 0-100.
//!
//! Pure: every input (velocity counts, countries, e-mail domain, failed attempts) is a fact
//! looked up before the command is sent. The thresholds live in [`FraudPolicy`]; a command
//! may carry its own policy or fall back to [`FraudPolicy::default_for`].

use std::collections::BTreeSet;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{CountryCode, Currency, Money, MoneyError};

/// One scoring rule.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum FraudRule {
    /// The amount is above [`FraudPolicy::high_amount`].
    HighAmount,
    /// The customer placed at least [`FraudPolicy::velocity_limit`] orders in the last 24 hours.
    CustomerVelocity,
    /// Billing and shipping countries differ.
    CountryMismatch,
    /// A first order above [`FraudPolicy::high_first_order`].
    HighFirstOrder,
    /// The e-mail domain is a known disposable-mail domain.
    DisposableEmail,
    /// At least [`FraudPolicy::failed_attempts_limit`] failed payment attempts recently.
    RepeatedFailedAttempts,
}

/// A rule that fired and the points it added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FiredFraudRule {
    pub rule: FraudRule,
    pub points: u8,
}

/// What the score means for the payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum FraudOutcome {
    /// Below the review threshold: the payment may proceed.
    Passed,
    /// In the review band: a person decides before the payment may proceed.
    ReviewRequired,
    /// Above the reject threshold: the payment cannot proceed.
    Rejected,
}

/// Facts about the customer and the order, looked up before scoring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FraudInputs {
    /// Orders the customer placed in the 24 hours before this one.
    pub customer_orders_last_24h: u32,
    pub billing_country: CountryCode,
    pub shipping_country: CountryCode,
    /// The customer has no earlier completed order.
    pub first_order: bool,
    pub email: String,
    /// Failed payment attempts by this customer or card in the last 24 hours.
    pub failed_attempts: u32,
}

/// Points per rule and the decision thresholds.
///
/// Outcome: `score > reject_above` → rejected; `score >= review_from` → review required;
/// otherwise passed. Amount thresholds are in the payment's currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FraudPolicy {
    pub high_amount: Money,
    pub high_amount_points: u8,
    pub velocity_limit: u32,
    pub velocity_points: u8,
    pub country_mismatch_points: u8,
    pub high_first_order: Money,
    pub high_first_order_points: u8,
    pub disposable_domains: BTreeSet<String>,
    pub disposable_email_points: u8,
    pub failed_attempts_limit: u32,
    pub failed_attempts_points: u8,
    pub review_from: u8,
    pub reject_above: u8,
}

impl FraudPolicy {
    /// The engine's default policy, with amounts in `currency`: 1,000.00 is a high amount,
    /// 300.00 a high first order, 3 orders a day or 3 failed attempts are suspicious,
    /// review from 40 points, reject above 70.
    pub fn default_for(currency: Currency) -> Self {
        Self {
            high_amount: Money::new(100_000, currency),
            high_amount_points: 25,
            velocity_limit: 3,
            velocity_points: 20,
            country_mismatch_points: 15,
            high_first_order: Money::new(30_000, currency),
            high_first_order_points: 20,
            disposable_domains: [
                "mailinator.com",
                "guerrillamail.com",
                "10minutemail.com",
                "temp-mail.org",
                "yopmail.com",
                "trashmail.com",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            disposable_email_points: 20,
            failed_attempts_limit: 3,
            failed_attempts_points: 25,
            review_from: 40,
            reject_above: 70,
        }
    }

    /// The thresholds are consistent: the review band lies below the reject threshold and
    /// both are on the 0-100 scale.
    pub fn is_consistent(&self) -> bool {
        self.review_from <= self.reject_above && self.reject_above <= 100
    }
}

/// The result of scoring one payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FraudAssessment {
    pub score: u8,
    pub fired: Vec<FiredFraudRule>,
    pub outcome: FraudOutcome,
}

/// Scores `amount` with `inputs` under `policy`.
///
/// Errors only when the policy's amounts are in another currency than `amount`.
pub fn assess(
    amount: Money,
    inputs: &FraudInputs,
    policy: &FraudPolicy,
) -> Result<FraudAssessment, MoneyError> {
    let high_amount = amount.checked_sub(policy.high_amount)?.is_positive();
    let high_first = amount.checked_sub(policy.high_first_order)?.is_positive();
    let domain = inputs
        .email
        .rsplit_once('@')
        .map(|(_, d)| d.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let checks = [
        (
            FraudRule::HighAmount,
            high_amount,
            policy.high_amount_points,
        ),
        (
            FraudRule::CustomerVelocity,
            inputs.customer_orders_last_24h >= policy.velocity_limit,
            policy.velocity_points,
        ),
        (
            FraudRule::CountryMismatch,
            inputs.billing_country != inputs.shipping_country,
            policy.country_mismatch_points,
        ),
        (
            FraudRule::HighFirstOrder,
            inputs.first_order && high_first,
            policy.high_first_order_points,
        ),
        (
            FraudRule::DisposableEmail,
            policy.disposable_domains.contains(&domain),
            policy.disposable_email_points,
        ),
        (
            FraudRule::RepeatedFailedAttempts,
            inputs.failed_attempts >= policy.failed_attempts_limit,
            policy.failed_attempts_points,
        ),
    ];
    let fired: Vec<FiredFraudRule> = checks
        .into_iter()
        .filter(|(_, hit, points)| *hit && *points > 0)
        .map(|(rule, _, points)| FiredFraudRule { rule, points })
        .collect();
    let total: u32 = fired.iter().map(|f| u32::from(f.points)).sum();
    let score = u8::try_from(total.min(100)).unwrap_or(100);
    let outcome = if score > policy.reject_above {
        FraudOutcome::Rejected
    } else if score >= policy.review_from {
        FraudOutcome::ReviewRequired
    } else {
        FraudOutcome::Passed
    };
    Ok(FraudAssessment {
        score,
        fired,
        outcome,
    })
}

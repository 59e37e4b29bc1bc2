use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{FraudInputs, FraudPolicy};
use crate::{Money, OrderId, PaymentId, RefundId};

/// Commands of the payment aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PaymentCommand {
    InitiatePayment(InitiatePayment),
    AssessFraud(AssessFraud),
    ResolveFraudReview(ResolveFraudReview),
    RequireAction(RequireAction),
    AuthorizePayment(AuthorizePayment),
    AdjustAuthorization(AdjustAuthorization),
    DeclinePayment(DeclinePayment),
    CapturePayment(CapturePayment),
    VoidPayment { at: DateTime<Utc> },
    RefundPayment(RefundPayment),
    RecordChargeback(RecordChargeback),
}

/// Start a payment of `amount` (positive) for an order with a provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InitiatePayment {
    pub payment_id: PaymentId,
    pub order_id: OrderId,
    pub amount: Money,
    /// Tokenised payment method from the provider (never card data).
    pub method_token: String,
    /// The gateway, e.g. `stripe` or `adyen`.
    pub provider: String,
    pub at: DateTime<Utc>,
}

/// Score the payment. Without a policy, [`FraudPolicy::default_for`] the payment currency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssessFraud {
    pub inputs: FraudInputs,
    pub policy: Option<FraudPolicy>,
    pub at: DateTime<Utc>,
}

/// A person's decision on a payment in the review band.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolveFraudReview {
    pub approved: bool,
    pub reviewer: String,
    pub at: DateTime<Utc>,
}

/// The provider asks for a customer step (3-D Secure challenge).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequireAction {
    pub challenge_id: String,
    pub redirect_url: String,
    pub at: DateTime<Utc>,
}

/// The provider reserved money; only after a passed (or cleared) fraud check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthorizePayment {
    pub provider_reference: String,
    /// May be less than the payment amount (partial authorization), never more.
    pub amount: Money,
    pub at: DateTime<Utc>,
}

/// The provider moved an authorization to a new total (the order was edited): an
/// incremental authorization when higher, a partial release when lower. Never below
/// what was captured; the same amount again changes nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdjustAuthorization {
    pub amount: Money,
    pub at: DateTime<Utc>,
}

/// The provider refused the payment; final.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeclinePayment {
    /// The provider's decline code, e.g. `insufficient_funds`.
    pub reason_code: String,
    pub at: DateTime<Utc>,
}

/// Capture part or all of what is still authorized (captures add up to at most the
/// authorization).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapturePayment {
    pub amount: Money,
    pub at: DateTime<Utc>,
}

/// Refund part of the captured money. A refund id already recorded is a no-op.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefundPayment {
    pub refund_id: RefundId,
    pub amount: Money,
    pub at: DateTime<Utc>,
}

/// The card issuer pulled money back on the customer's dispute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordChargeback {
    pub reference: String,
    pub amount: Money,
    pub reason_code: String,
    pub at: DateTime<Utc>,
}

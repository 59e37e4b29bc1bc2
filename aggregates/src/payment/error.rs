use super::PaymentStatus;
use crate::{Money, MoneyError};

/// Why a payment command was refused. One variant per rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    #[error("the payment already exists")]
    AlreadyInitiated,
    #[error("the payment does not exist")]
    NotFound,
    #[error("amount must be greater than zero, got {0}")]
    NonPositiveAmount(Money),
    #[error("a payment needs a payment method token")]
    MissingMethodToken,
    #[error("a payment needs a provider")]
    MissingProvider,
    #[error(transparent)]
    Money(#[from] MoneyError),
    #[error("the fraud policy's review threshold is above its reject threshold or above 100")]
    InconsistentFraudPolicy,
    #[error("the payment was already scored for fraud")]
    FraudAlreadyAssessed,
    #[error("the payment has not been scored for fraud yet")]
    FraudNotAssessed,
    #[error("the payment was rejected by the fraud check and cannot proceed")]
    FraudRejected,
    #[error("the payment waits for a fraud review")]
    FraudReviewPending,
    #[error("the payment is not waiting for a fraud review")]
    NoFraudReviewPending,
    #[error("the payment is not waiting for authorization (it is {0:?})")]
    NotAwaitingAuthorization(PaymentStatus),
    #[error("an authorization needs the provider's reference")]
    MissingProviderReference,
    #[error("cannot authorize {requested}, the payment is for {amount}")]
    AuthorizationExceedsAmount { amount: Money, requested: Money },
    #[error("the payment is not authorized (it is {0:?})")]
    NotAuthorized(PaymentStatus),
    #[error("cannot capture {requested}, only {capturable} of the authorization is left")]
    CaptureExceedsAuthorized { capturable: Money, requested: Money },
    #[error("cannot lower the authorization to {requested}: {captured} was already captured")]
    AuthorizationBelowCaptured { captured: Money, requested: Money },
    #[error("cannot void: {captured} was already captured (refund instead)")]
    VoidAfterCapture { captured: Money },
    #[error("cannot refund {requested}, only {refundable} of the captured money is left")]
    RefundExceedsCaptured { refundable: Money, requested: Money },
    #[error("cannot charge back {requested}, only {disputable} is still held")]
    ChargebackExceedsCaptured { disputable: Money, requested: Money },
}

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::{Money, MoneyError, OrderId, PaymentId, RefundId};

/// Where a payment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum PaymentStatus {
    #[default]
    NotInitiated,
    /// Initiated, not yet scored for fraud.
    AwaitingFraudCheck,
    InFraudReview,
    FraudRejected,
    /// Scored (and reviewed if needed); the provider may authorize or decline.
    AwaitingAuthorization,
    /// The provider asked for a 3-D Secure challenge.
    ActionRequired,
    /// Authorized; captures, refunds and chargebacks move the amounts, not the status.
    Authorized,
    Declined,
    Voided,
}

/// State of one payment, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    pub status: PaymentStatus,
    /// `None` until the payment is initiated.
    pub ledger: Option<Ledger>,
    pub refund_ids: BTreeSet<RefundId>,
}

/// The amounts of an initiated payment, all in the currency of `amount`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    pub payment_id: PaymentId,
    pub order_id: OrderId,
    /// The amount requested at initiation.
    pub amount: Money,
    pub authorized: Money,
    pub captured: Money,
    pub refunded: Money,
    pub charged_back: Money,
}

impl Ledger {
    /// Authorized and not yet captured.
    pub fn capturable(&self) -> Result<Money, MoneyError> {
        self.authorized.checked_sub(self.captured)
    }

    /// Captured money still held: neither refunded nor charged back.
    pub fn held(&self) -> Result<Money, MoneyError> {
        self.captured
            .checked_sub(self.refunded)?
            .checked_sub(self.charged_back)
    }
}

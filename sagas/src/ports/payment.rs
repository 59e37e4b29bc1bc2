//! The payment provider port: authorize, status, capture, void, refund.

use std::future::Future;

use aggregates::{Money, PaymentId, RefundId};
use uuid::Uuid;

use super::PortError;

/// What an authorization attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizationOutcome {
    /// Money is reserved on the customer's card under `reference`.
    Authorized { reference: String, amount: Money },
    /// Refused for good; `code` is the provider's decline code.
    Declined { code: String },
    /// The customer must pass a challenge (3-D Secure); the outcome arrives later as a
    /// signed callback, or by asking [`PaymentProvider::status`].
    ActionRequired {
        reference: String,
        challenge_id: String,
        redirect_url: String,
    },
    /// The call timed out and the provider may or may not have authorized. Ask
    /// [`PaymentProvider::status`] before anything else.
    Unknown,
    /// [`PaymentProvider::status`] only: the provider never saw the attempt, so it is safe
    /// to authorize again with the same key.
    NotFound,
}

/// The payment provider contract.
///
/// - Every mutating call takes an idempotency key; the same key with the same request
///   returns the first outcome and moves no money again (Stripe's `Idempotency-Key`).
/// - `authorize` maps a timeout to [`AuthorizationOutcome::Unknown`]; `status` answers
///   for an authorization by the key it was attempted with.
/// - `capture` may be called several times per authorization (one per shipment), each
///   for part of the authorized amount; `void` releases an authorization nothing was
///   captured from; `refund` returns part of what was captured.
/// - `update_authorization` moves an open authorization to a new total when the order
///   is edited before anything ships: `Authorized {amount}` with the new total, or
///   `Declined {code}` and the old authorization stands. Higher is Stripe's
///   `increment_authorization` (not every card supports it: a decline is an ordinary
///   outcome), lower is Adyen's amount update; a Stripe adapter lowers by remembering
///   the new total and capturing no more than it, releasing the rest with the last
///   capture (`final_capture`). Never below what was captured.
/// - A business refusal is an outcome (`Declined`, `CaptureFailed`, `RefundFailed`); an
///   `Err` means the provider could not answer and the call may be repeated with its key.
pub trait PaymentProvider: Send + Sync {
    /// The gateway name recorded on payments, e.g. `stripe` or `test`.
    fn name(&self) -> &str;

    fn authorize(
        &self,
        key: Uuid,
        payment_id: PaymentId,
        amount: Money,
        method_token: &str,
    ) -> impl Future<Output = Result<AuthorizationOutcome, PortError>> + Send;

    fn status(
        &self,
        authorize_key: Uuid,
    ) -> impl Future<Output = Result<AuthorizationOutcome, PortError>> + Send;

    fn capture(
        &self,
        key: Uuid,
        reference: &str,
        amount: Money,
    ) -> impl Future<Output = Result<PaymentReply, PortError>> + Send;

    fn update_authorization(
        &self,
        key: Uuid,
        reference: &str,
        amount: Money,
    ) -> impl Future<Output = Result<PaymentReply, PortError>> + Send;

    fn void(
        &self,
        key: Uuid,
        reference: &str,
    ) -> impl Future<Output = Result<PaymentReply, PortError>> + Send;

    fn refund(
        &self,
        key: Uuid,
        reference: &str,
        amount: Money,
    ) -> impl Future<Output = Result<PaymentReply, PortError>> + Send;
}

/// A payment call a saga asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum PaymentRequest {
    Authorize {
        payment_id: PaymentId,
        amount: Money,
        method_token: String,
    },
    Status {
        payment_id: PaymentId,
        authorize_key: Uuid,
    },
    Capture {
        payment_id: PaymentId,
        reference: String,
        amount: Money,
        /// What the capture pays for (a shipment id), for the saga's bookkeeping.
        purpose: String,
    },
    /// Move the authorization to `amount`, the order's new total.
    UpdateAuthorization {
        payment_id: PaymentId,
        reference: String,
        amount: Money,
    },
    Void {
        payment_id: PaymentId,
        reference: String,
    },
    Refund {
        payment_id: PaymentId,
        reference: String,
        refund_id: RefundId,
        amount: Money,
    },
}

/// The provider's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentReply {
    Authorization(AuthorizationOutcome),
    Captured { amount: Money },
    CaptureFailed { code: String },
    Voided,
    Refunded { amount: Money },
    RefundFailed { code: String },
}

/// Performs one request on `provider`.
pub async fn perform<P: PaymentProvider>(
    provider: &P,
    key: Uuid,
    request: &PaymentRequest,
) -> Result<PaymentReply, PortError> {
    match request {
        PaymentRequest::Authorize {
            payment_id,
            amount,
            method_token,
        } => provider
            .authorize(key, *payment_id, *amount, method_token)
            .await
            .map(PaymentReply::Authorization),
        PaymentRequest::Status { authorize_key, .. } => provider
            .status(*authorize_key)
            .await
            .map(PaymentReply::Authorization),
        PaymentRequest::Capture {
            reference, amount, ..
        } => provider.capture(key, reference, *amount).await,
        PaymentRequest::UpdateAuthorization {
            reference, amount, ..
        } => provider.update_authorization(key, reference, *amount).await,
        PaymentRequest::Void { reference, .. } => provider.void(key, reference).await,
        PaymentRequest::Refund {
            reference, amount, ..
        } => provider.refund(key, reference, *amount).await,
    }
}

//! Outside parties behind ports: the payment provider and the carrier.
//!
//! Each port is a trait whose contract a real provider (Stripe-shaped payments, a
//! parcel carrier's API) can fulfil without a saga changing, plus a built-in
//! deterministic test provider selected like a provider's test mode. Every call carries
//! an idempotency key derived from the saga input that made it, so a call repeated after
//! a crash is recognised by the provider and never charges or ships twice. Callbacks the
//! providers send are verified with [`signature`].
//!
//! A saga does not call a port: it asks for a [`PortCall`] in its reaction, the runner
//! performs it with [`perform`], and the [`PortReply`] comes back as the saga's next
//! input.

pub mod carrier;
pub mod payment;
pub mod signature;
pub mod test_carrier;
pub mod test_payment;

use uuid::Uuid;

pub use carrier::{Carrier, CarrierReply, CarrierRequest};
pub use payment::{PaymentProvider, PaymentReply, PaymentRequest};

/// A request to an outside party.
#[derive(Debug, Clone, PartialEq)]
pub enum PortRequest {
    Payment(PaymentRequest),
    Carrier(CarrierRequest),
}

/// Its answer.
#[derive(Debug, Clone, PartialEq)]
pub enum PortReply {
    Payment(PaymentReply),
    Carrier(CarrierReply),
}

/// A call a saga step asks for. `key` is the provider's idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub struct PortCall {
    pub key: Uuid,
    pub request: PortRequest,
}

/// The provider could not be reached or answered with an error of its own (not a
/// business outcome such as a decline): the runner retries the whole step later, with
/// the same idempotency keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{provider}: {message}")]
pub struct PortError {
    pub provider: String,
    pub message: String,
}

/// Performs `call` on the matching port.
pub async fn perform<P: PaymentProvider, C: Carrier>(
    payments: &P,
    carrier: &C,
    call: &PortCall,
) -> Result<PortReply, PortError> {
    Ok(match &call.request {
        PortRequest::Payment(request) => {
            PortReply::Payment(payment::perform(payments, call.key, request).await?)
        }
        PortRequest::Carrier(request) => {
            PortReply::Carrier(carrier::perform(carrier, call.key, request).await?)
        }
    })
}

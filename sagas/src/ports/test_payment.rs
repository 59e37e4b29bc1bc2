//! The built-in deterministic payment provider (test mode).
//!
//! The payment method token decides what happens, like a provider's test cards:
//!
//! | token | outcome |
//! |---|---|
//! | `tok_visa` | authorized in full; captures, voids and refunds succeed |
//! | `tok_insufficient_funds` | declined, `insufficient_funds` |
//! | `tok_stolen` | declined, `stolen_card` |
//! | `tok_3ds` | 3-D Secure challenge; [`TestPaymentProvider::complete_challenge`] decides |
//! | `tok_timeout` | authorized, but the first answer is lost (`Unknown`); `status` tells |
//! | `tok_capture_fails` | authorized; every capture fails with `processing_error` |
//! | `tok_no_increment` | authorized; an increase of the authorization is declined `incremental_authorization_not_supported` (lowering it succeeds) |
//! | anything else | declined, `card_not_supported` |
//!
//! Idempotency keys are honoured for every call, and the provider keeps a ledger per
//! authorization so tests can check that no money moved twice.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use aggregates::{Money, PaymentId};
use uuid::Uuid;

use super::payment::{AuthorizationOutcome, PaymentProvider, PaymentReply};
use super::PortError;

pub const SUCCEEDS: &str = "tok_visa";
pub const INSUFFICIENT_FUNDS: &str = "tok_insufficient_funds";
pub const STOLEN: &str = "tok_stolen";
pub const THREE_D_SECURE: &str = "tok_3ds";
pub const TIMES_OUT: &str = "tok_timeout";
pub const CAPTURE_FAILS: &str = "tok_capture_fails";
pub const NO_INCREMENT: &str = "tok_no_increment";

/// The money of one authorization as the provider sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCharge {
    pub reference: String,
    pub payment_id: PaymentId,
    pub token: String,
    /// The amount asked for.
    pub requested: Money,
    /// Reserved on the card: zero when declined or while a challenge is open.
    pub authorized: Money,
    pub captured: Money,
    pub refunded: Money,
    pub voided: bool,
    /// Authorize calls that reached the provider under this key (a repeated call
    /// returns the first outcome and moves no money).
    pub calls: u32,
    /// `None` while a 3-D Secure challenge is open, then whether it was passed.
    pub challenge_passed: Option<bool>,
}

#[derive(Debug, Default)]
struct Books {
    /// By authorize key.
    charges: BTreeMap<Uuid, TestCharge>,
    /// Outcome of every capture / void / refund key, returned again on a repeat.
    settled: BTreeMap<Uuid, PaymentReply>,
}

/// The deterministic test provider. Clones share one set of books.
#[derive(Debug, Clone, Default)]
pub struct TestPaymentProvider {
    books: Arc<Mutex<Books>>,
}

impl TestPaymentProvider {
    pub fn new() -> Self {
        Self::default()
    }

    fn books(&self) -> MutexGuard<'_, Books> {
        // A panic while holding the lock leaves the books consistent (every update is a
        // single assignment), so a poisoned lock is still usable.
        self.books.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every authorization the provider holds, by reference.
    pub fn charges(&self) -> Vec<TestCharge> {
        self.books().charges.values().cloned().collect()
    }

    /// The authorization of `payment_id`, if any reached the provider.
    pub fn charge_of(&self, payment_id: PaymentId) -> Option<TestCharge> {
        self.books()
            .charges
            .values()
            .find(|c| c.payment_id == payment_id)
            .cloned()
    }

    /// The customer finished (or failed) the 3-D Secure challenge of `reference`.
    /// Returns whether such an open challenge existed.
    pub fn complete_challenge(&self, reference: &str, passed: bool) -> bool {
        let mut books = self.books();
        match books
            .charges
            .values_mut()
            .find(|c| c.reference == reference && c.challenge_passed.is_none())
        {
            Some(charge) => {
                charge.challenge_passed = Some(passed);
                if passed {
                    charge.authorized = charge.requested;
                }
                true
            }
            None => false,
        }
    }

    fn outcome(charge: &TestCharge) -> AuthorizationOutcome {
        match charge.token.as_str() {
            INSUFFICIENT_FUNDS => declined("insufficient_funds"),
            STOLEN => declined("stolen_card"),
            SUCCEEDS | TIMES_OUT | CAPTURE_FAILS | NO_INCREMENT => {
                AuthorizationOutcome::Authorized {
                    reference: charge.reference.clone(),
                    amount: charge.requested,
                }
            }
            THREE_D_SECURE => match charge.challenge_passed {
                None => AuthorizationOutcome::ActionRequired {
                    reference: charge.reference.clone(),
                    challenge_id: format!("challenge_{}", charge.reference),
                    redirect_url: format!("https://3ds.test.invalid/{}", charge.reference),
                },
                Some(true) => AuthorizationOutcome::Authorized {
                    reference: charge.reference.clone(),
                    amount: charge.requested,
                },
                Some(false) => declined("authentication_failed"),
            },
            _ => declined("card_not_supported"),
        }
    }

    fn settle(
        &self,
        key: Uuid,
        reference: &str,
        apply: impl FnOnce(&mut TestCharge) -> PaymentReply,
    ) -> Result<PaymentReply, PortError> {
        let mut books = self.books();
        if let Some(reply) = books.settled.get(&key) {
            return Ok(reply.clone());
        }
        let charge = books
            .charges
            .values_mut()
            .find(|c| c.reference == reference)
            .ok_or_else(|| PortError {
                provider: "test".into(),
                message: format!("no authorization {reference}"),
            })?;
        let reply = apply(charge);
        books.settled.insert(key, reply.clone());
        Ok(reply)
    }
}

fn declined(code: &str) -> AuthorizationOutcome {
    AuthorizationOutcome::Declined { code: code.into() }
}

fn authorized_now(charge: &TestCharge) -> bool {
    matches!(
        TestPaymentProvider::outcome(charge),
        AuthorizationOutcome::Authorized { .. }
    )
}

impl PaymentProvider for TestPaymentProvider {
    fn name(&self) -> &str {
        "test"
    }

    async fn authorize(
        &self,
        key: Uuid,
        payment_id: PaymentId,
        amount: Money,
        method_token: &str,
    ) -> Result<AuthorizationOutcome, PortError> {
        let mut books = self.books();
        let first = !books.charges.contains_key(&key);
        let charge = books.charges.entry(key).or_insert_with(|| TestCharge {
            reference: format!("pi_{}", key.simple()),
            payment_id,
            token: method_token.to_string(),
            requested: amount,
            authorized: Money::zero(amount.currency),
            captured: Money::zero(amount.currency),
            refunded: Money::zero(amount.currency),
            voided: false,
            calls: 0,
            challenge_passed: None,
        });
        charge.calls += 1;
        if charge.calls == 1 && authorized_now(charge) {
            charge.authorized = amount;
        }
        if first && charge.token == TIMES_OUT {
            return Ok(AuthorizationOutcome::Unknown);
        }
        Ok(Self::outcome(charge))
    }

    async fn status(&self, authorize_key: Uuid) -> Result<AuthorizationOutcome, PortError> {
        Ok(match self.books().charges.get(&authorize_key) {
            Some(charge) => Self::outcome(charge),
            None => AuthorizationOutcome::NotFound,
        })
    }

    async fn capture(
        &self,
        key: Uuid,
        reference: &str,
        amount: Money,
    ) -> Result<PaymentReply, PortError> {
        self.settle(key, reference, |charge| {
            if charge.token == CAPTURE_FAILS {
                return PaymentReply::CaptureFailed {
                    code: "processing_error".into(),
                };
            }
            let remaining = charge.authorized.amount - charge.captured.amount;
            if charge.voided || !authorized_now(charge) || amount.amount > remaining {
                return PaymentReply::CaptureFailed {
                    code: "amount_too_large".into(),
                };
            }
            charge.captured.amount += amount.amount;
            PaymentReply::Captured { amount }
        })
    }

    async fn update_authorization(
        &self,
        key: Uuid,
        reference: &str,
        amount: Money,
    ) -> Result<PaymentReply, PortError> {
        self.settle(key, reference, |charge| {
            let outcome = if charge.voided || !authorized_now(charge) {
                declined("authorization_not_open")
            } else if amount.amount < charge.captured.amount {
                declined("amount_below_captured")
            } else if amount.amount > charge.authorized.amount && charge.token == NO_INCREMENT {
                declined("incremental_authorization_not_supported")
            } else {
                charge.authorized = amount;
                charge.requested = amount;
                AuthorizationOutcome::Authorized {
                    reference: charge.reference.clone(),
                    amount,
                }
            };
            PaymentReply::Authorization(outcome)
        })
    }

    async fn void(&self, key: Uuid, reference: &str) -> Result<PaymentReply, PortError> {
        self.settle(key, reference, |charge| {
            charge.voided = true;
            PaymentReply::Voided
        })
    }

    async fn refund(
        &self,
        key: Uuid,
        reference: &str,
        amount: Money,
    ) -> Result<PaymentReply, PortError> {
        self.settle(key, reference, |charge| {
            if amount.amount > charge.captured.amount - charge.refunded.amount {
                return PaymentReply::RefundFailed {
                    code: "amount_too_large".into(),
                };
            }
            charge.refunded.amount += amount.amount;
            PaymentReply::Refunded { amount }
        })
    }
}

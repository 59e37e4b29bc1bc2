use super::*;
use crate::{Decider, Money};

impl Decider for Payment {
    type Command = PaymentCommand;
    type Event = PaymentEvent;
    type Error = PaymentError;

    fn decide(&self, command: PaymentCommand) -> Result<Vec<PaymentEvent>, PaymentError> {
        let (l, command) = match (&self.ledger, command) {
            (None, PaymentCommand::InitiatePayment(c)) => return initiate(c),
            (Some(_), PaymentCommand::InitiatePayment(_)) => {
                return Err(PaymentError::AlreadyInitiated)
            }
            (None, _) => return Err(PaymentError::NotFound),
            (Some(ledger), command) => (ledger, command),
        };
        let (payment_id, order_id) = (l.payment_id, l.order_id);
        let event: PaymentEvent = match command {
            PaymentCommand::InitiatePayment(_) => return Err(PaymentError::AlreadyInitiated),
            PaymentCommand::AssessFraud(c) => {
                if self.status != PaymentStatus::AwaitingFraudCheck {
                    return Err(PaymentError::FraudAlreadyAssessed);
                }
                let policy = c
                    .policy
                    .unwrap_or_else(|| FraudPolicy::default_for(l.amount.currency));
                if !policy.is_consistent() {
                    return Err(PaymentError::InconsistentFraudPolicy);
                }
                let assessment = fraud::assess(l.amount, &c.inputs, &policy)?;
                PaymentFraudAssessed {
                    payment_id,
                    order_id,
                    score: assessment.score,
                    fired: assessment.fired,
                    outcome: assessment.outcome,
                    at: c.at,
                }
                .into()
            }
            PaymentCommand::ResolveFraudReview(c) => {
                if self.status != PaymentStatus::InFraudReview {
                    return Err(PaymentError::NoFraudReviewPending);
                }
                PaymentFraudReviewed {
                    payment_id,
                    order_id,
                    approved: c.approved,
                    reviewer: c.reviewer,
                    at: c.at,
                }
                .into()
            }
            PaymentCommand::RequireAction(c) => {
                self.must_await_authorization()?;
                PaymentActionRequired {
                    payment_id,
                    order_id,
                    challenge_id: c.challenge_id,
                    redirect_url: c.redirect_url,
                    at: c.at,
                }
                .into()
            }
            PaymentCommand::AuthorizePayment(c) => {
                self.must_await_authorization()?;
                if c.provider_reference.trim().is_empty() {
                    return Err(PaymentError::MissingProviderReference);
                }
                positive(c.amount)?;
                if l.amount.checked_sub(c.amount)?.is_negative() {
                    return Err(PaymentError::AuthorizationExceedsAmount {
                        amount: l.amount,
                        requested: c.amount,
                    });
                }
                PaymentAuthorized {
                    payment_id,
                    order_id,
                    provider_reference: c.provider_reference,
                    amount: c.amount,
                    at: c.at,
                }
                .into()
            }
            PaymentCommand::AdjustAuthorization(c) => {
                self.must_be_authorized()?;
                positive(c.amount)?;
                if c.amount == l.authorized {
                    return Ok(vec![]);
                }
                if c.amount.checked_sub(l.captured)?.is_negative() {
                    return Err(PaymentError::AuthorizationBelowCaptured {
                        captured: l.captured,
                        requested: c.amount,
                    });
                }
                PaymentAuthorizationAdjusted {
                    payment_id,
                    order_id,
                    previous_authorized: l.authorized,
                    authorized: c.amount,
                    at: c.at,
                }
                .into()
            }
            PaymentCommand::DeclinePayment(c) => {
                self.must_await_authorization()?;
                PaymentDeclined {
                    payment_id,
                    order_id,
                    reason_code: c.reason_code,
                    at: c.at,
                }
                .into()
            }
            PaymentCommand::CapturePayment(c) => {
                self.must_be_authorized()?;
                positive(c.amount)?;
                let capturable = l.capturable()?;
                let capturable_remaining = capturable.checked_sub(c.amount)?;
                if capturable_remaining.is_negative() {
                    return Err(PaymentError::CaptureExceedsAuthorized {
                        capturable,
                        requested: c.amount,
                    });
                }
                PaymentCaptured {
                    payment_id,
                    order_id,
                    amount: c.amount,
                    captured_total: l.captured.checked_add(c.amount)?,
                    capturable_remaining,
                    at: c.at,
                }
                .into()
            }
            PaymentCommand::VoidPayment { at } => {
                self.must_be_authorized()?;
                if !l.captured.is_zero() {
                    return Err(PaymentError::VoidAfterCapture {
                        captured: l.captured,
                    });
                }
                PaymentVoided {
                    payment_id,
                    order_id,
                    released: l.authorized,
                    at,
                }
                .into()
            }
            PaymentCommand::RefundPayment(c) => {
                // Providers and sagas retry; the refund id is the idempotency key.
                if self.refund_ids.contains(&c.refund_id) {
                    return Ok(vec![]);
                }
                self.must_be_authorized()?;
                positive(c.amount)?;
                let refundable = l.held()?;
                let refundable_remaining = refundable.checked_sub(c.amount)?;
                if refundable_remaining.is_negative() {
                    return Err(PaymentError::RefundExceedsCaptured {
                        refundable,
                        requested: c.amount,
                    });
                }
                PaymentRefunded {
                    payment_id,
                    order_id,
                    refund_id: c.refund_id,
                    amount: c.amount,
                    refunded_total: l.refunded.checked_add(c.amount)?,
                    refundable_remaining,
                    at: c.at,
                }
                .into()
            }
            PaymentCommand::RecordChargeback(c) => {
                self.must_be_authorized()?;
                positive(c.amount)?;
                let disputable = l.held()?;
                if disputable.checked_sub(c.amount)?.is_negative() {
                    return Err(PaymentError::ChargebackExceedsCaptured {
                        disputable,
                        requested: c.amount,
                    });
                }
                PaymentChargebackRecorded {
                    payment_id,
                    order_id,
                    reference: c.reference,
                    amount: c.amount,
                    reason_code: c.reason_code,
                    charged_back_total: l.charged_back.checked_add(c.amount)?,
                    at: c.at,
                }
                .into()
            }
        };
        Ok(vec![event])
    }

    fn evolve(&mut self, event: &PaymentEvent) {
        match event {
            PaymentEvent::PaymentInitiated(e) => {
                let zero = Money::zero(e.amount.currency);
                self.ledger = Some(Ledger {
                    payment_id: e.payment_id,
                    order_id: e.order_id,
                    amount: e.amount,
                    authorized: zero,
                    captured: zero,
                    refunded: zero,
                    charged_back: zero,
                });
                self.status = PaymentStatus::AwaitingFraudCheck;
            }
            PaymentEvent::PaymentFraudAssessed(e) => {
                self.status = match e.outcome {
                    FraudOutcome::Passed => PaymentStatus::AwaitingAuthorization,
                    FraudOutcome::ReviewRequired => PaymentStatus::InFraudReview,
                    FraudOutcome::Rejected => PaymentStatus::FraudRejected,
                }
            }
            PaymentEvent::PaymentFraudReviewed(e) => {
                self.status = if e.approved {
                    PaymentStatus::AwaitingAuthorization
                } else {
                    PaymentStatus::FraudRejected
                }
            }
            PaymentEvent::PaymentActionRequired(_) => self.status = PaymentStatus::ActionRequired,
            PaymentEvent::PaymentAuthorized(e) => {
                self.status = PaymentStatus::Authorized;
                if let Some(l) = &mut self.ledger {
                    l.authorized = e.amount;
                }
            }
            PaymentEvent::PaymentAuthorizationAdjusted(e) => {
                if let Some(l) = &mut self.ledger {
                    l.amount = e.authorized;
                    l.authorized = e.authorized;
                }
            }
            PaymentEvent::PaymentDeclined(_) => self.status = PaymentStatus::Declined,
            PaymentEvent::PaymentCaptured(e) => {
                if let Some(l) = &mut self.ledger {
                    l.captured = e.captured_total;
                }
            }
            PaymentEvent::PaymentVoided(_) => self.status = PaymentStatus::Voided,
            PaymentEvent::PaymentRefunded(e) => {
                self.refund_ids.insert(e.refund_id);
                if let Some(l) = &mut self.ledger {
                    l.refunded = e.refunded_total;
                }
            }
            PaymentEvent::PaymentChargebackRecorded(e) => {
                if let Some(l) = &mut self.ledger {
                    l.charged_back = e.charged_back_total;
                }
            }
        }
    }
}

fn initiate(c: InitiatePayment) -> Result<Vec<PaymentEvent>, PaymentError> {
    positive(c.amount)?;
    if c.method_token.trim().is_empty() {
        return Err(PaymentError::MissingMethodToken);
    }
    if c.provider.trim().is_empty() {
        return Err(PaymentError::MissingProvider);
    }
    Ok(vec![PaymentInitiated {
        payment_id: c.payment_id,
        order_id: c.order_id,
        amount: c.amount,
        method_token: c.method_token,
        provider: c.provider,
        at: c.at,
    }
    .into()])
}

fn positive(amount: Money) -> Result<(), PaymentError> {
    if amount.is_positive() {
        Ok(())
    } else {
        Err(PaymentError::NonPositiveAmount(amount))
    }
}

impl Payment {
    fn must_await_authorization(&self) -> Result<(), PaymentError> {
        match self.status {
            PaymentStatus::AwaitingAuthorization | PaymentStatus::ActionRequired => Ok(()),
            PaymentStatus::AwaitingFraudCheck => Err(PaymentError::FraudNotAssessed),
            PaymentStatus::InFraudReview => Err(PaymentError::FraudReviewPending),
            PaymentStatus::FraudRejected => Err(PaymentError::FraudRejected),
            other => Err(PaymentError::NotAwaitingAuthorization(other)),
        }
    }

    fn must_be_authorized(&self) -> Result<(), PaymentError> {
        match self.status {
            PaymentStatus::Authorized => Ok(()),
            PaymentStatus::FraudRejected => Err(PaymentError::FraudRejected),
            other => Err(PaymentError::NotAuthorized(other)),
        }
    }
}

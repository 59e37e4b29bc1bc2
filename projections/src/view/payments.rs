//! `payments_ledger`: one row per payment of an order: what was authorized, captured,
//! refunded and charged back, its fraud score and where it stands.

use aggregates::payment::Payment;
use aggregates::payment::{FraudOutcome, PaymentEvent};
use aggregates::EventSourced;
use chrono::{DateTime, Utc};

use super::minor;
use crate::event::{Event, ViewEvent};
use crate::projection::Projection;
use crate::row::{key, Change};

pub struct PaymentsLedger;

const LEDGER: &str = "payments_ledger";

impl Projection for PaymentsLedger {
    fn name(&self) -> &'static str {
        "payments_ledger"
    }

    fn tables(&self) -> &'static [&'static str] {
        &[LEDGER]
    }

    fn reads(&self, stream_type: &str) -> bool {
        stream_type == Payment::STREAM_TYPE
    }

    fn apply(&self, event: &Event<'_>, out: &mut Vec<Change>) {
        if let ViewEvent::Payment(e) = event.event {
            out.push(payment(event.stream_id, e));
        }
    }
}

fn outcome(outcome: FraudOutcome) -> &'static str {
    match outcome {
        FraudOutcome::Passed => "passed",
        FraudOutcome::ReviewRequired => "review_required",
        FraudOutcome::Rejected => "rejected",
    }
}

fn row(id: &str, at: DateTime<Utc>) -> Change {
    Change::update(LEDGER, key("payment_id", id)).set("updated_at", at)
}

fn payment(id: &str, event: &PaymentEvent) -> Change {
    match event {
        PaymentEvent::PaymentInitiated(e) => Change::upsert(LEDGER, key("payment_id", id))
            .set("order_id", e.order_id.to_string())
            .set("provider", &e.provider)
            .set("status", "initiated")
            .set("currency", e.amount.currency.as_str())
            .set("amount_minor", e.amount.amount)
            .set("authorized_minor", 0i64)
            .set("captured_minor", 0i64)
            .set("refunded_minor", 0i64)
            .set("charged_back_minor", 0i64)
            .set("initiated_at", e.at)
            .set("updated_at", e.at),
        PaymentEvent::PaymentFraudAssessed(e) => row(id, e.at)
            .set("fraud_score", e.score)
            .set("fraud_outcome", outcome(e.outcome)),
        PaymentEvent::PaymentFraudReviewed(e) => row(id, e.at).set(
            "fraud_outcome",
            if e.approved {
                "review_approved"
            } else {
                "review_rejected"
            },
        ),
        PaymentEvent::PaymentActionRequired(e) => row(id, e.at).set("status", "action_required"),
        PaymentEvent::PaymentAuthorized(e) => minor(
            row(id, e.at)
                .set("status", "authorized")
                .set("provider_reference", &e.provider_reference)
                .set("authorized_at", e.at),
            "authorized_minor",
            &e.amount,
        ),
        PaymentEvent::PaymentAuthorizationAdjusted(e) => minor(
            minor(row(id, e.at), "authorized_minor", &e.authorized),
            "amount_minor",
            &e.authorized,
        ),
        PaymentEvent::PaymentDeclined(e) => row(id, e.at)
            .set("status", "declined")
            .set("decline_reason", &e.reason_code),
        PaymentEvent::PaymentCaptured(e) => minor(
            row(id, e.at).set("status", "captured"),
            "captured_minor",
            &e.captured_total,
        ),
        PaymentEvent::PaymentVoided(e) => row(id, e.at).set("status", "voided"),
        PaymentEvent::PaymentRefunded(e) => minor(
            row(id, e.at).set(
                "status",
                if e.refundable_remaining.amount == 0 {
                    "refunded"
                } else {
                    "partially_refunded"
                },
            ),
            "refunded_minor",
            &e.refunded_total,
        ),
        PaymentEvent::PaymentChargebackRecorded(e) => minor(
            row(id, e.at).set("status", "charged_back"),
            "charged_back_minor",
            &e.charged_back_total,
        ),
    }
}

//! Payment routes (staff): read a payment, refund captured money, decide a fraud review,
//! record a chargeback (admin).
//!
//! Initiation, fraud scoring, authorization and capture come from the payment saga and
//! the provider's callbacks (a later issue): no routes here. A refund's id is the
//! request's command id, so a retried refund with the same `Idempotency-Key` refunds
//! once. The optional refund reason and review note are not part of the payment events;
//! they are kept in the events' metadata (`refund_reason`, `review_note`) for audit.

use aggregates::payment::{
    Payment, PaymentCommand, PaymentStatus, RecordChargeback, RefundPayment, ResolveFraudReview,
};
use aggregates::{Currency, EventSourced, Money, OrderId, PaymentId, RefundId};
use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue};
use axum::Json;
use infra::command::CommandError;
use infra::StreamRef;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::catalogue::{amount_in, check_text};
use super::input::{etag, path_uuid};
use crate::http::command::{CommandMeta, CommandReply, CommandReplyBody};
use crate::http::json::ApiJson;
use crate::http::openapi::{ApiRouter, Operation};
use crate::http::principal::{AdminRole, Role, Staff};
use crate::http::problem::Problem;
use crate::http::AppState;

/// Longest refund reason, review note, chargeback reference or reason code.
pub const MAX_TEXT: usize = 500;

const TAG: &str = "payments";
const STAFF: &[Role] = &[Role::Staff, Role::Admin];
const ADMIN: &[Role] = &[Role::Admin];

/// Money back to the customer from what was captured.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundBody {
    /// Minor units, at most what was captured and not yet refunded.
    #[schemars(range(min = 1, max = 1_000_000_000_000i64))]
    pub amount: i64,
    /// The payment's currency.
    pub currency: Currency,
    /// Why, for the audit trail.
    #[serde(default)]
    #[schemars(length(max = 500))]
    pub reason: Option<String>,
}

/// A person's decision on a payment held for fraud review.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FraudReviewBody {
    /// `true` lets the payment proceed to authorization; `false` rejects it.
    pub approve: bool,
    /// The reviewer's note, for the audit trail.
    #[serde(default)]
    #[schemars(length(max = 500))]
    pub note: Option<String>,
}

/// The card issuer pulled money back on the customer's dispute.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChargebackBody {
    /// The issuer's or provider's dispute reference.
    #[schemars(length(min = 1, max = 500))]
    pub reference: String,
    #[schemars(range(min = 1, max = 1_000_000_000_000i64))]
    pub amount: i64,
    pub currency: Currency,
    /// The issuer's reason code, e.g. `fraudulent`.
    #[schemars(length(min = 1, max = 500))]
    pub reason_code: String,
}

/// Where a payment is in its life.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatusView {
    AwaitingFraudCheck,
    InFraudReview,
    FraudRejected,
    AwaitingAuthorization,
    ActionRequired,
    Authorized,
    Declined,
    Voided,
}

/// A payment as staff see it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PaymentView {
    pub payment_id: PaymentId,
    pub order_id: OrderId,
    pub status: PaymentStatusView,
    /// The amount requested.
    pub amount: Money,
    pub authorized: Money,
    pub captured: Money,
    pub refunded: Money,
    pub charged_back: Money,
    /// Refunds recorded, by refund id.
    pub refund_ids: Vec<RefundId>,
    /// The payment stream's version (also the `ETag`).
    pub version: i64,
}

/// The payment routes.
pub fn router() -> ApiRouter {
    ApiRouter::new()
        .route(
            Operation::get("/payments/{payment_id}")
                .summary("Read a payment")
                .description("Status and amounts: authorized, captured, refunded, charged back.")
                .tag(TAG)
                .roles(STAFF)
                .path_param("payment_id", "The payment's UUID")
                .reply::<PaymentView>(200)
                .problems(&["invalid_id", "not_found"]),
            axum::routing::get(get_payment),
        )
        .route(
            Operation::post("/payments/{payment_id}/refunds")
                .summary("Refund captured money")
                .description("The refund id is derived from the `Idempotency-Key`.")
                .tag(TAG)
                .roles(STAFF)
                .command()
                .path_param("payment_id", "The payment's UUID")
                .body::<RefundBody>()
                .reply::<CommandReplyBody>(200)
                .problems(&[
                    "invalid_id",
                    "payment_not_found",
                    "payment_not_authorized",
                    "payment_amount_not_positive",
                    "payment_amount_invalid",
                    "refund_exceeds_captured",
                ]),
            axum::routing::post(refund),
        )
        .route(
            Operation::post("/payments/{payment_id}/fraud-review")
                .summary("Decide a fraud review")
                .tag(TAG)
                .roles(STAFF)
                .command()
                .path_param("payment_id", "The payment's UUID")
                .body::<FraudReviewBody>()
                .reply::<CommandReplyBody>(200)
                .problems(&["invalid_id", "payment_not_found", "no_fraud_review_pending"]),
            axum::routing::post(fraud_review),
        )
        .route(
            Operation::post("/payments/{payment_id}/chargebacks")
                .summary("Record a chargeback")
                .tag(TAG)
                .roles(ADMIN)
                .command()
                .path_param("payment_id", "The payment's UUID")
                .body::<ChargebackBody>()
                .reply::<CommandReplyBody>(200)
                .problems(&[
                    "invalid_id",
                    "payment_not_found",
                    "payment_not_authorized",
                    "payment_amount_not_positive",
                    "payment_amount_invalid",
                    "chargeback_exceeds_captured",
                ]),
            axum::routing::post(chargeback),
        )
}

async fn get_payment(
    Staff(_): Staff,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<([(HeaderName, HeaderValue); 1], Json<PaymentView>), Problem> {
    let id = payment_id(&id)?;
    let stream_id = id.to_string();
    let loaded = state.commands.load::<Payment>(&stream_id).await?;
    let Some((loaded, ledger)) = loaded.and_then(|l| {
        let ledger = l.state.ledger.clone()?;
        Some((l, ledger))
    }) else {
        let stream = StreamRef::new(Payment::STREAM_TYPE, stream_id);
        return Err(CommandError::NotFound { stream }.into());
    };
    let status = match loaded.state.status {
        // A payment with a ledger has been initiated; treat the impossible pair as the
        // first stage rather than fail the read.
        PaymentStatus::NotInitiated | PaymentStatus::AwaitingFraudCheck => {
            PaymentStatusView::AwaitingFraudCheck
        }
        PaymentStatus::InFraudReview => PaymentStatusView::InFraudReview,
        PaymentStatus::FraudRejected => PaymentStatusView::FraudRejected,
        PaymentStatus::AwaitingAuthorization => PaymentStatusView::AwaitingAuthorization,
        PaymentStatus::ActionRequired => PaymentStatusView::ActionRequired,
        PaymentStatus::Authorized => PaymentStatusView::Authorized,
        PaymentStatus::Declined => PaymentStatusView::Declined,
        PaymentStatus::Voided => PaymentStatusView::Voided,
    };
    let view = PaymentView {
        payment_id: ledger.payment_id,
        order_id: ledger.order_id,
        status,
        amount: ledger.amount,
        authorized: ledger.authorized,
        captured: ledger.captured,
        refunded: ledger.refunded,
        charged_back: ledger.charged_back,
        refund_ids: loaded.state.refund_ids.iter().copied().collect(),
        version: loaded.version,
    };
    Ok(([etag(view.version)], Json(view)))
}

async fn refund(
    Staff(_): Staff,
    State(state): State<AppState>,
    meta: CommandMeta,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RefundBody>,
) -> Result<CommandReply, Problem> {
    let id = payment_id(&id)?;
    let amount = amount_in(body.amount, body.currency)?;
    let mut ctx = meta.context();
    if let Some(reason) = body.reason {
        check_text("reason", &reason, 0, MAX_TEXT)?;
        ctx.extra.insert("refund_reason".into(), reason);
    }
    let command = PaymentCommand::RefundPayment(RefundPayment {
        refund_id: RefundId::from_uuid(ctx.command_id),
        amount,
        at: state.store.clock().now(),
    });
    run(&state, &ctx, id, command).await
}

async fn fraud_review(
    Staff(principal): Staff,
    State(state): State<AppState>,
    meta: CommandMeta,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<FraudReviewBody>,
) -> Result<CommandReply, Problem> {
    let id = payment_id(&id)?;
    let mut ctx = meta.context();
    if let Some(note) = body.note {
        check_text("note", &note, 0, MAX_TEXT)?;
        ctx.extra.insert("review_note".into(), note);
    }
    let command = PaymentCommand::ResolveFraudReview(ResolveFraudReview {
        approved: body.approve,
        reviewer: principal.actor(),
        at: state.store.clock().now(),
    });
    run(&state, &ctx, id, command).await
}

async fn chargeback(
    AdminRole(_): AdminRole,
    State(state): State<AppState>,
    meta: CommandMeta,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ChargebackBody>,
) -> Result<CommandReply, Problem> {
    let id = payment_id(&id)?;
    check_text("reference", &body.reference, 1, MAX_TEXT)?;
    check_text("reason_code", &body.reason_code, 1, MAX_TEXT)?;
    let command = PaymentCommand::RecordChargeback(RecordChargeback {
        reference: body.reference,
        amount: amount_in(body.amount, body.currency)?,
        reason_code: body.reason_code,
        at: state.store.clock().now(),
    });
    run(&state, &meta.context(), id, command).await
}

/// Runs a command on payment `id`; an unknown one is the domain's
/// `404 payment_not_found`.
async fn run(
    state: &AppState,
    ctx: &infra::command::CommandContext,
    id: PaymentId,
    command: PaymentCommand,
) -> Result<CommandReply, Problem> {
    let id = id.to_string();
    let done = state.commands.execute::<Payment>(ctx, &id, command).await?;
    Ok(CommandReply::ok(&done))
}

fn payment_id(raw: &str) -> Result<PaymentId, Problem> {
    path_uuid(raw).map(PaymentId::from_uuid)
}

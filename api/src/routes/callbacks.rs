//! Signed callbacks from the outside parties of the checkout saga (service role):
//! `POST /callbacks/payments/{provider}` (a 3-D Secure challenge passed or failed) and
//! `POST /callbacks/carriers/{carrier}` (a tracking scan).
//!
//! A callback is accepted only when its `Callback-Signature` header
//! (`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, the shared secret of that
//! provider or carrier) matches the raw body, its timestamp lies within the tolerance of
//! now, and its signature was not accepted before: accepted signatures are claimed in
//! `callback_signatures` (migration 13) by an insert, so a replay is refused by every
//! process and after restarts. Refusals change nothing.
//!
//! An accepted callback reaches the saga of its order at once
//! ([`SagaRunner::deliver`](infra::saga::SagaRunner::deliver)): a payment callback asks
//! the saga to query the provider's status now (the provider stays the source of truth,
//! as with Stripe's webhooks), a carrier callback is folded in as the carrier's tracking
//! answer. The step's command ids derive from the callback, so the same outcome sent
//! again under a new signature does nothing twice.

use std::sync::Arc;

use aggregates::payment::Payment;
use aggregates::shipment::Shipment;
use aggregates::{OrderId, PaymentId, ShipmentId};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use infra::on_db;
use infra::saga::Delivered;
use sagas::checkout::timer;
use sagas::ports::carrier::{Scan, TrackingUpdate};
use sagas::ports::signature::{self, SignatureError, Verified};
use sagas::ports::{CarrierReply, CarrierRequest, PaymentProvider, PortReply, PortRequest};
use sagas::{Input, TimerFired};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::engine::CheckoutRunner;
use crate::http::errors::row;
use crate::http::principal::{Role, Service};
use crate::http::problem::Problem;
use crate::http::{ApiRouter, AppState, Operation};

/// The header carrying a callback's signature.
pub const SIGNATURE_HEADER: &str = "callback-signature";
/// Longest location of a scan.
const MAX_LOCATION: usize = 200;
/// Longest provider reference or tracking number.
const MAX_REFERENCE: usize = 200;

const TAG: &str = "callbacks";

/// Problems every callback route can answer.
const CALLBACK_PROBLEMS: &[&str] = &[
    "callback_not_configured",
    "callback_source_unknown",
    "callback_signature_invalid",
    "callback_stale",
    "callback_replayed",
    "callback_reference_unknown",
    "malformed_json",
    "invalid_body",
    "contention",
];

/// What the callback routes need: the running saga (its providers) and the secrets.
#[derive(Clone, Default)]
pub struct Callbacks {
    /// The checkout saga this process runs; `None` refuses callbacks with 503.
    pub runner: Option<Arc<CheckoutRunner>>,
    /// The carrier's name in `/callbacks/carriers/{carrier}`.
    pub carrier: String,
    pub payment_secret: Option<Vec<u8>>,
    pub carrier_secret: Option<Vec<u8>>,
    /// How far a callback's timestamp may lie from now (either side).
    pub tolerance: Duration,
}

impl std::fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secrets stay out of logs.
        f.debug_struct("Callbacks")
            .field("runner", &self.runner.is_some())
            .field("carrier", &self.carrier)
            .field("payment_secret", &self.payment_secret.is_some())
            .field("carrier_secret", &self.carrier_secret.is_some())
            .field("tolerance", &self.tolerance)
            .finish()
    }
}

impl Callbacks {
    /// Callbacks for `runner`'s providers, signed with the given secrets (a missing
    /// secret refuses that kind of callback), within `tolerance`.
    pub fn new(
        runner: Arc<CheckoutRunner>,
        carrier: impl Into<String>,
        payment_secret: Option<Vec<u8>>,
        carrier_secret: Option<Vec<u8>>,
        tolerance: Duration,
    ) -> Self {
        Self {
            runner: Some(runner),
            carrier: carrier.into(),
            payment_secret,
            carrier_secret,
            tolerance,
        }
    }
}

/// `POST /callbacks/payments/{provider}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentCallbackBody {
    /// What happened.
    #[serde(rename = "type")]
    pub kind: PaymentCallbackType,
    /// The payment the authorization was made for (the provider's metadata).
    pub payment_id: PaymentId,
    /// The provider's reference of the authorization (`pi_…`).
    #[schemars(length(min = 1, max = 200))]
    pub reference: String,
}

/// A payment callback's event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum PaymentCallbackType {
    /// The customer passed the 3-D Secure challenge.
    #[serde(rename = "challenge.passed")]
    ChallengePassed,
    /// The customer failed (or abandoned) it.
    #[serde(rename = "challenge.failed")]
    ChallengeFailed,
}

/// `POST /callbacks/carriers/{carrier}`: one scan of a parcel.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CarrierCallbackBody {
    /// The shipment the label was bought for (the carrier's merchant reference).
    pub shipment_id: ShipmentId,
    #[schemars(length(min = 1, max = 200))]
    pub tracking_number: String,
    pub status: ScanStatus,
    /// Where the parcel was scanned.
    #[serde(default)]
    #[schemars(length(max = 200))]
    pub location: String,
    /// When it was scanned.
    pub at: DateTime<Utc>,
}

/// A tracking scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScanStatus {
    InTransit,
    OutForDelivery,
    Delivered,
    Failed,
    /// Back at the warehouse after a failed delivery.
    ReturnedToSender,
}

impl From<ScanStatus> for Scan {
    fn from(s: ScanStatus) -> Self {
        match s {
            ScanStatus::InTransit => Scan::InTransit,
            ScanStatus::OutForDelivery => Scan::OutForDelivery,
            ScanStatus::Delivered => Scan::Delivered,
            ScanStatus::Failed => Scan::Failed,
            ScanStatus::ReturnedToSender => Scan::ReturnedToSender,
        }
    }
}

/// An accepted callback.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CallbackReplyBody {
    /// The order whose saga took the callback in.
    pub order_id: OrderId,
}

/// The callback routes.
pub fn router() -> ApiRouter {
    let service = &[Role::Service, Role::Admin];
    ApiRouter::new()
        .route(
            Operation::post("/callbacks/payments/{provider}")
                .summary("A payment provider's signed callback (3-D Secure outcome)")
                .description("Signed with the provider's secret in the `Callback-Signature` header (`t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<body>\">`). Accepted once, within the timestamp tolerance; the order's saga asks the provider for the authorization's status at once.")
                .tag(TAG)
                .roles(service)
                .path_param("provider", "The payment provider's name (`test`).")
                .body::<PaymentCallbackBody>()
                .reply::<CallbackReplyBody>(200)
                .problems(CALLBACK_PROBLEMS),
            post(payment_callback),
        )
        .route(
            Operation::post("/callbacks/carriers/{carrier}")
                .summary("A carrier's signed tracking scan")
                .description("Signed like a payment callback, with the carrier's secret. Accepted once, within the timestamp tolerance; the scan reaches the order's saga as the carrier's tracking answer.")
                .tag(TAG)
                .roles(service)
                .path_param("carrier", "The carrier's name (`test`).")
                .body::<CarrierCallbackBody>()
                .reply::<CallbackReplyBody>(200)
                .problems(CALLBACK_PROBLEMS),
            post(carrier_callback),
        )
}

async fn payment_callback(
    Service(_): Service,
    State(state): State<AppState>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    raw: Bytes,
) -> Result<Json<CallbackReplyBody>, Problem> {
    let callbacks = &state.callbacks;
    let runner = runner(callbacks)?;
    if provider != runner.payments().name() {
        return Err(unknown_source(&provider));
    }
    let secret = secret(callbacks.payment_secret.as_deref())?;
    let now = state.store.clock().now();
    let verified = verify(secret, &headers, &raw, now, callbacks.tolerance)?;
    let body: PaymentCallbackBody = parse(&raw)?;
    if body.reference.is_empty() || body.reference.len() > MAX_REFERENCE {
        return Err(invalid_body("`reference` has 1 to 200 characters"));
    }
    let source = format!("payments/{provider}");
    claim(&state, &source, &verified, now).await?;
    let outcome = async {
        let ledger = state
            .commands
            .load::<Payment>(&body.payment_id.to_string())
            .await?
            .and_then(|l| l.state.ledger)
            .ok_or_else(|| unknown_reference("no such payment"))?;
        let payments = runner.payments();
        let charge = payments
            .charge_of(body.payment_id)
            .filter(|c| c.reference == body.reference)
            .ok_or_else(|| unknown_reference("the provider holds no such authorization"))?;
        // The provider learns the challenge's outcome (the test provider's books; a real
        // provider knows it before it calls back). A repeated outcome changes nothing.
        if charge.challenge_passed.is_none() {
            payments.complete_challenge(
                &body.reference,
                body.kind == PaymentCallbackType::ChallengePassed,
            );
        }
        let saga_id = ledger.order_id.to_string();
        let input = Input::Timer(TimerFired::new(
            &saga_id,
            timer::PAYMENT_STATUS,
            signed_at(&verified),
        ));
        deliver(runner, &saga_id, input).await?;
        Ok(ledger.order_id)
    }
    .await;
    settle(&state, &source, &verified, outcome).await
}

async fn carrier_callback(
    Service(_): Service,
    State(state): State<AppState>,
    Path(carrier): Path<String>,
    headers: HeaderMap,
    raw: Bytes,
) -> Result<Json<CallbackReplyBody>, Problem> {
    let callbacks = &state.callbacks;
    let runner = runner(callbacks)?;
    if carrier != callbacks.carrier {
        return Err(unknown_source(&carrier));
    }
    let secret = secret(callbacks.carrier_secret.as_deref())?;
    let now = state.store.clock().now();
    let verified = verify(secret, &headers, &raw, now, callbacks.tolerance)?;
    let body: CarrierCallbackBody = parse(&raw)?;
    if body.tracking_number.is_empty() || body.tracking_number.len() > MAX_REFERENCE {
        return Err(invalid_body("`tracking_number` has 1 to 200 characters"));
    }
    if body.location.chars().count() > MAX_LOCATION {
        return Err(invalid_body("`location` has at most 200 characters"));
    }
    let source = format!("carriers/{carrier}");
    claim(&state, &source, &verified, now).await?;
    let outcome = async {
        let shipment = state
            .commands
            .load::<Shipment>(&body.shipment_id.to_string())
            .await?
            .map(|l| l.state)
            .filter(|s| s.tracking_number == body.tracking_number)
            .ok_or_else(|| unknown_reference("no shipment with that tracking number"))?;
        let order_id = shipment
            .order_id
            .ok_or_else(|| unknown_reference("the shipment belongs to no order"))?;
        let saga_id = order_id.to_string();
        // Keyed by the scan itself: the same scan sent again issues the same commands.
        let key = sagas::saga::entity_id(
            "carrier-scan",
            &format!(
                "{}/{:?}/{}",
                body.shipment_id,
                body.status,
                body.at.timestamp_micros()
            ),
        );
        let input = Input::Reply {
            key,
            request: PortRequest::Carrier(CarrierRequest::Track {
                shipment_id: body.shipment_id,
                tracking_number: body.tracking_number.clone(),
            }),
            reply: PortReply::Carrier(CarrierReply::Tracking(vec![TrackingUpdate {
                scan: body.status.into(),
                location: body.location.clone(),
                at: body.at,
            }])),
        };
        deliver(runner, &saga_id, input).await?;
        Ok(order_id)
    }
    .await;
    settle(&state, &source, &verified, outcome).await
}

fn runner(callbacks: &Callbacks) -> Result<&Arc<CheckoutRunner>, Problem> {
    callbacks.runner.as_ref().ok_or_else(|| {
        row::CALLBACK_NOT_CONFIGURED.problem("this process does not run the checkout saga")
    })
}

fn secret(secret: Option<&[u8]>) -> Result<&[u8], Problem> {
    secret.ok_or_else(|| {
        row::CALLBACK_NOT_CONFIGURED.problem("no callback secret is configured for this source")
    })
}

fn unknown_source(name: &str) -> Problem {
    row::CALLBACK_SOURCE_UNKNOWN.problem(format!("no provider or carrier named `{name}` here"))
}

fn unknown_reference(detail: &str) -> Problem {
    row::CALLBACK_REFERENCE_UNKNOWN.problem(detail)
}

fn invalid_body(detail: &str) -> Problem {
    row::INVALID_BODY.problem(detail)
}

fn verify(
    secret: &[u8],
    headers: &HeaderMap,
    raw: &[u8],
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<Verified, Problem> {
    let header = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            row::CALLBACK_SIGNATURE_INVALID.problem("the Callback-Signature header is missing")
        })?;
    // Replays are caught by the claim below, which is atomic across processes.
    signature::verify(secret, header, raw, now, tolerance, |_| false).map_err(|e| match e {
        SignatureError::Stale { .. } => row::CALLBACK_STALE.problem(e.to_string()),
        SignatureError::Replayed => row::CALLBACK_REPLAYED.problem(e.to_string()),
        SignatureError::Malformed | SignatureError::Mismatch => {
            row::CALLBACK_SIGNATURE_INVALID.problem(e.to_string())
        }
    })
}

fn parse<T: serde::de::DeserializeOwned>(raw: &[u8]) -> Result<T, Problem> {
    serde_json::from_slice(raw).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            row::MALFORMED_JSON.problem(e.to_string())
        } else {
            row::INVALID_BODY.problem(e.to_string())
        }
    })
}

fn signed_at(verified: &Verified) -> DateTime<Utc> {
    DateTime::from_timestamp(verified.timestamp, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

async fn deliver(runner: &CheckoutRunner, saga_id: &str, input: Input) -> Result<(), Problem> {
    match runner.deliver(saga_id, input).await {
        Ok(Delivered::Stepped) => Ok(()),
        Ok(Delivered::NoSaga) => Err(unknown_reference("no checkout saga for the order")),
        Err(e) => {
            tracing::warn!(saga_id, error = %e, "callback step failed");
            Err(row::CONTENTION
                .problem("the order's saga could not take the callback in now; send it again")
                .with_retry_after(1))
        }
    }
}

/// Claims the callback's signature; a signature claimed before is a replay. Signatures
/// older than twice the tolerance are pruned on the way (a callback that old is stale).
async fn claim(
    state: &AppState,
    source: &str,
    verified: &Verified,
    now: DateTime<Utc>,
) -> Result<(), Problem> {
    let inserted = insert_signature(state, source, verified, now)
        .await
        .map_err(|e| {
            row::INTERNAL_ERROR
                .problem("callbacks")
                .with_internal(e.to_string())
        })?;
    if inserted == 0 {
        return Err(row::CALLBACK_REPLAYED.problem("this callback was already accepted"));
    }
    Ok(())
}

/// The answer to a claimed callback. When the saga could not take it in (a transient
/// failure), the claim is released so the provider's retry of the same callback is
/// accepted; any other refusal keeps it.
async fn settle(
    state: &AppState,
    source: &str,
    verified: &Verified,
    outcome: Result<OrderId, Problem>,
) -> Result<Json<CallbackReplyBody>, Problem> {
    match outcome {
        Ok(order_id) => Ok(Json(CallbackReplyBody { order_id })),
        Err(problem) if problem.code == row::CONTENTION.code => {
            release_signature(state, source, verified)
                .await
                .map_err(|e| {
                    row::INTERNAL_ERROR
                        .problem("callbacks")
                        .with_internal(e.to_string())
                })?;
            Err(problem)
        }
        Err(problem) => Err(problem),
    }
}

async fn insert_signature(
    state: &AppState,
    source: &str,
    verified: &Verified,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let horizon = now - state.callbacks.tolerance * 2;
    let signed = signed_at(verified);
    Ok(on_db!(state.store.db(), pool => {
        sqlx::query("DELETE FROM callback_signatures WHERE accepted_at < $1")
            .bind(horizon)
            .execute(pool)
            .await?;
        sqlx::query(
            "INSERT INTO callback_signatures (source, signature, signed_at, accepted_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (source, signature) DO NOTHING",
        )
        .bind(source)
        .bind(&verified.signature)
        .bind(signed)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected()
    }))
}

async fn release_signature(
    state: &AppState,
    source: &str,
    verified: &Verified,
) -> Result<(), sqlx::Error> {
    on_db!(state.store.db(), pool => {
        sqlx::query("DELETE FROM callback_signatures WHERE source = $1 AND signature = $2")
            .bind(source)
            .bind(&verified.signature)
            .execute(pool)
            .await?;
    });
    Ok(())
}

//! Shipment routes (staff): the warehouse steps of a parcel, from planning to the
//! doorstep, and reading a shipment.
//!
//! A shipment's stream id is its UUID, the creating request's command id. The steps
//! follow the domain's state machine (created → picked → packed → labelled →
//! dispatched → in transit / out for delivery → delivered, or a failed delivery and a
//! return to the sender); a step out of order is refused by the domain rule that names
//! it. Carrier callbacks arrive with the sagas issue (service role); until then staff
//! record tracking scans and delivery outcomes here.

use aggregates::shipment::{
    CreateLabel, CreateShipment, DeliveryFailureReason, ReportDeliveryFailure, Shipment,
    ShipmentCommand, ShipmentLine, ShipmentStatus, TrackingStatus, UpdateTracking,
};
use aggregates::{EventSourced, OrderId, Quantity, ShipmentId, Sku, WarehouseId};
use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue};
use axum::Json;
use chrono::{DateTime, Utc};
use infra::command::CommandError;
use infra::StreamRef;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::catalogue::check_text;
use super::input::{etag, invalid_body, path_uuid};
use super::settings::known_warehouse;
use crate::http::command::{CommandMeta, CommandReply, CommandReplyBody};
use crate::http::json::ApiJson;
use crate::http::openapi::{ApiRouter, Operation};
use crate::http::principal::{Role, Staff};
use crate::http::problem::Problem;
use crate::http::AppState;

/// Most lines in one shipment.
pub const MAX_LINES: usize = 200;
/// Longest carrier code, tracking number, label reference or location.
pub const MAX_FIELD: usize = 200;

const TAG: &str = "shipments";
const STAFF: &[Role] = &[Role::Staff, Role::Admin];

/// A planned shipment of some order lines from one warehouse.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateShipmentBody {
    pub order_id: OrderId,
    /// Warehouse code; one of the shop's warehouses once any is configured.
    #[schemars(length(min = 1, max = 32))]
    pub warehouse: String,
    /// Every SKU once, each with at least one unit.
    #[schemars(length(min = 1, max = 200))]
    pub lines: Vec<ShipmentLineBody>,
}

/// Units of one SKU in a shipment.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipmentLineBody {
    pub sku: Sku,
    #[schemars(range(min = 1))]
    pub quantity: u32,
}

/// The carrier label bought for a packed shipment.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LabelBody {
    /// Carrier code, e.g. `dhl`.
    #[schemars(length(min = 1, max = 200))]
    pub carrier: String,
    #[schemars(length(min = 1, max = 200))]
    pub tracking_number: String,
    /// Where the printable label is stored (URL or document reference).
    #[serde(default)]
    #[schemars(length(max = 200))]
    pub label_reference: String,
}

/// A carrier scan between dispatch and delivery.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrackingBody {
    pub status: TrackingStatusBody,
    #[serde(default)]
    #[schemars(length(max = 200))]
    pub location: String,
    /// The carrier's scan time; now when absent. Never in the future.
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
}

/// A carrier scan status.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrackingStatusBody {
    InTransit,
    OutForDelivery,
}

/// A failed delivery attempt.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryFailureBody {
    pub reason: DeliveryFailureReasonBody,
}

/// Why the carrier could not hand the parcel over.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryFailureReasonBody {
    RecipientAbsent,
    AddressNotFound,
    Refused,
    AccessDenied,
    Damaged,
}

/// A shipment as staff see it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ShipmentView {
    pub shipment_id: ShipmentId,
    pub order_id: Option<OrderId>,
    pub warehouse: Option<WarehouseId>,
    pub lines: Vec<ShipmentLine>,
    pub status: ShipmentStatus,
    pub carrier_code: String,
    pub tracking_number: String,
    /// Time of the latest movement (dispatch, scan or failed attempt).
    pub last_movement_at: Option<DateTime<Utc>>,
    pub failed_attempts: u32,
    /// The shipment stream's version (also the `ETag`).
    pub version: i64,
}

/// The shipment routes.
pub fn router() -> ApiRouter {
    // Every step: a malformed or unknown id, or the step out of order.
    let step = |path: &'static str, summary: &'static str, codes: &[&'static str]| {
        Operation::post(path)
            .summary(summary)
            .tag(TAG)
            .roles(STAFF)
            .command()
            .path_param("shipment_id", "The shipment's UUID")
            .reply::<CommandReplyBody>(200)
            .problems(&["invalid_id", "shipment_not_found"])
            .problems(codes)
    };
    ApiRouter::new()
        .route(
            Operation::post("/shipments")
                .summary("Plan a shipment")
                .description("The shipment id is derived from the `Idempotency-Key`.")
                .tag(TAG)
                .roles(STAFF)
                .command()
                .body::<CreateShipmentBody>()
                .reply::<CommandReplyBody>(201)
                .problems(&[
                    "unknown_warehouse",
                    "shipment_already_created",
                    "shipment_no_lines",
                    "shipment_quantity_zero",
                    "shipment_duplicate_line",
                    "shipment_warehouse_missing",
                ]),
            axum::routing::post(create_shipment),
        )
        .route(
            Operation::get("/shipments/{shipment_id}")
                .summary("Read a shipment")
                .tag(TAG)
                .roles(STAFF)
                .path_param("shipment_id", "The shipment's UUID")
                .reply::<ShipmentView>(200)
                .problems(&["invalid_id", "not_found"]),
            axum::routing::get(get_shipment),
        )
        .route(
            step(
                "/shipments/{shipment_id}/pick",
                "Record the shipment picked",
                &["shipment_not_awaiting_pick"],
            ),
            axum::routing::post(pick),
        )
        .route(
            step(
                "/shipments/{shipment_id}/pack",
                "Record the shipment packed",
                &["shipment_not_picked"],
            ),
            axum::routing::post(pack),
        )
        .route(
            step(
                "/shipments/{shipment_id}/label",
                "Record the carrier label",
                &[
                    "shipment_not_packed",
                    "carrier_code_missing",
                    "tracking_number_missing",
                ],
            )
            .body::<LabelBody>(),
            axum::routing::post(label),
        )
        .route(
            step(
                "/shipments/{shipment_id}/dispatch",
                "Hand the shipment to the carrier",
                &["shipment_not_labelled"],
            ),
            axum::routing::post(dispatch),
        )
        .route(
            step(
                "/shipments/{shipment_id}/tracking",
                "Record a carrier scan",
                &["shipment_not_on_the_way"],
            )
            .body::<TrackingBody>(),
            axum::routing::post(tracking),
        )
        .route(
            step(
                "/shipments/{shipment_id}/deliver",
                "Confirm delivery",
                &["shipment_not_on_the_way"],
            ),
            axum::routing::post(deliver),
        )
        .route(
            step(
                "/shipments/{shipment_id}/delivery-failures",
                "Record a failed delivery attempt",
                &["shipment_not_on_the_way"],
            )
            .body::<DeliveryFailureBody>(),
            axum::routing::post(delivery_failure),
        )
        .route(
            step(
                "/shipments/{shipment_id}/return-to-sender",
                "Record the parcel returned to the sender",
                &["shipment_no_failed_delivery"],
            ),
            axum::routing::post(return_to_sender),
        )
}

async fn create_shipment(
    Staff(_): Staff,
    State(state): State<AppState>,
    meta: CommandMeta,
    ApiJson(body): ApiJson<CreateShipmentBody>,
) -> Result<CommandReply, Problem> {
    if body.lines.len() > MAX_LINES {
        return Err(invalid_body(format!("at most {MAX_LINES} lines")));
    }
    let warehouse = known_warehouse(&state, &body.warehouse).await?;
    let ctx = meta.context();
    let shipment_id = ShipmentId::from_uuid(ctx.command_id);
    let command = ShipmentCommand::CreateShipment(CreateShipment {
        shipment_id,
        order_id: body.order_id,
        warehouse,
        lines: body
            .lines
            .into_iter()
            .map(|l| ShipmentLine {
                sku: l.sku,
                quantity: Quantity::new(l.quantity),
            })
            .collect(),
        at: state.store.clock().now(),
    });
    let done = state
        .commands
        .execute::<Shipment>(&ctx, &shipment_id.to_string(), command)
        .await?;
    Ok(CommandReply::created(&done))
}

async fn get_shipment(
    Staff(_): Staff,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<([(HeaderName, HeaderValue); 1], Json<ShipmentView>), Problem> {
    let id = shipment_id(&id)?;
    let loaded = state.commands.load::<Shipment>(&id.to_string()).await?;
    let Some(loaded) = loaded else {
        let stream = StreamRef::new(Shipment::STREAM_TYPE, id.to_string());
        return Err(CommandError::NotFound { stream }.into());
    };
    let s = loaded.state;
    let view = ShipmentView {
        shipment_id: id,
        order_id: s.order_id,
        warehouse: s.warehouse,
        lines: s.lines,
        status: s.status,
        carrier_code: s.carrier_code,
        tracking_number: s.tracking_number,
        last_movement_at: s.last_movement_at,
        failed_attempts: s.failed_attempts,
        version: loaded.version,
    };
    Ok(([etag(view.version)], Json(view)))
}

async fn pick(
    Staff(_): Staff,
    State(state): State<AppState>,
    meta: CommandMeta,
    Path(id): Path<String>,
) -> Result<CommandReply, Problem> {
    let at = state.store.clock().now();
    run(&state, &meta, &id, ShipmentCommand::PickShipment { at }).await
}

async fn pack(
    Staff(_): Staff,
    State(state): State<AppState>,
    meta: CommandMeta,
    Path(id): Path<String>,
) -> Result<CommandReply, Problem> {
    let at = state.store.clock().now();
    run(&state, &meta, &id, ShipmentCommand::PackShipment { at }).await
}

async fn label(
    Staff(_): Staff,
    State(state): State<AppState>,
    meta: CommandMeta,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<LabelBody>,
) -> Result<CommandReply, Problem> {
    // Empty carrier and tracking number are left to the domain rules that name them.
    check_text("carrier", &body.carrier, 0, MAX_FIELD)?;
    check_text("tracking_number", &body.tracking_number, 0, MAX_FIELD)?;
    check_text("label_reference", &body.label_reference, 0, MAX_FIELD)?;
    let command = ShipmentCommand::CreateLabel(CreateLabel {
        carrier_code: body.carrier,
        tracking_number: body.tracking_number,
        label_reference: body.label_reference,
        at: state.store.clock().now(),
    });
    run(&state, &meta, &id, command).await
}

async fn dispatch(
    Staff(_): Staff,
    State(state): State<AppState>,
    meta: CommandMeta,
    Path(id): Path<String>,
) -> Result<CommandReply, Problem> {
    let at = state.store.clock().now();
    run(&state, &meta, &id, ShipmentCommand::DispatchShipment { at }).await
}

async fn tracking(
    Staff(_): Staff,
    State(state): State<AppState>,
    meta: CommandMeta,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TrackingBody>,
) -> Result<CommandReply, Problem> {
    check_text("location", &body.location, 0, MAX_FIELD)?;
    let now = state.store.clock().now();
    let at = body.at.unwrap_or(now);
    if at > now {
        return Err(invalid_body("`at` must not be in the future"));
    }
    let status = match body.status {
        TrackingStatusBody::InTransit => TrackingStatus::InTransit,
        TrackingStatusBody::OutForDelivery => TrackingStatus::OutForDelivery,
    };
    let command = ShipmentCommand::UpdateTracking(UpdateTracking {
        status,
        location: body.location,
        at,
    });
    run(&state, &meta, &id, command).await
}

async fn deliver(
    Staff(_): Staff,
    State(state): State<AppState>,
    meta: CommandMeta,
    Path(id): Path<String>,
) -> Result<CommandReply, Problem> {
    let at = state.store.clock().now();
    run(&state, &meta, &id, ShipmentCommand::ConfirmDelivery { at }).await
}

async fn delivery_failure(
    Staff(_): Staff,
    State(state): State<AppState>,
    meta: CommandMeta,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DeliveryFailureBody>,
) -> Result<CommandReply, Problem> {
    let reason = match body.reason {
        DeliveryFailureReasonBody::RecipientAbsent => DeliveryFailureReason::RecipientAbsent,
        DeliveryFailureReasonBody::AddressNotFound => DeliveryFailureReason::AddressNotFound,
        DeliveryFailureReasonBody::Refused => DeliveryFailureReason::Refused,
        DeliveryFailureReasonBody::AccessDenied => DeliveryFailureReason::AccessDenied,
        DeliveryFailureReasonBody::Damaged => DeliveryFailureReason::Damaged,
    };
    let command = ShipmentCommand::ReportDeliveryFailure(ReportDeliveryFailure {
        reason,
        at: state.store.clock().now(),
    });
    run(&state, &meta, &id, command).await
}

async fn return_to_sender(
    Staff(_): Staff,
    State(state): State<AppState>,
    meta: CommandMeta,
    Path(id): Path<String>,
) -> Result<CommandReply, Problem> {
    let at = state.store.clock().now();
    run(&state, &meta, &id, ShipmentCommand::ReturnToSender { at }).await
}

/// Runs a step on shipment `raw_id`; an unknown one is the domain's
/// `404 shipment_not_found`.
async fn run(
    state: &AppState,
    meta: &CommandMeta,
    raw_id: &str,
    command: ShipmentCommand,
) -> Result<CommandReply, Problem> {
    let id = shipment_id(raw_id)?.to_string();
    let done = state
        .commands
        .execute::<Shipment>(&meta.context(), &id, command)
        .await?;
    Ok(CommandReply::ok(&done))
}

fn shipment_id(raw: &str) -> Result<ShipmentId, Problem> {
    path_uuid(raw).map(ShipmentId::from_uuid)
}

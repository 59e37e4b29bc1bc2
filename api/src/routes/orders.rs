//! Order routes. Customers read, cancel and edit their own orders before fulfilment and
//! ask for returns and exchanges; staff do the same for anyone, and also open drafts,
//! add lines to them, finalise and confirm orders and decide on returns.
//!
//! Payment captures, refunds, shipments and deliveries reach orders through the sagas,
//! not through these routes.

use aggregates::cart::{tax_rate, TaxRates};
use aggregates::order::{
    AddLine, ApproveReturn, CancelOrder, CancellationReason, ChangeLineQuantity,
    ChangeShippingAddress, LineQuantity, NewOrderLine, Order, OrderCommand, OrderLine, OrderStatus,
    OrderTotals, PlaceOrder, ReceiveReturn, RejectReturn, RemoveLine, RequestExchange,
    RequestReturn, ReturnStatus,
};
use aggregates::{
    Address, Currency, CustomerId, DomainError, Money, OrderId, Quantity, ReturnId, ShipmentId, Sku,
};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, get, post, put};
use infra::command::{CommandContext, CommandError, Loaded};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::carts::{check_address, owned, with_etag};
use super::input::{invalid_body, path_sku, path_uuid};
use crate::http::command::{CommandMeta, CommandReply, CommandReplyBody};
use crate::http::errors::{self, row};
use crate::http::json::ApiJson;
use crate::http::principal::{CustomerOrStaff, Role, Staff};
use crate::http::problem::Problem;
use crate::http::{ApiRouter, AppState, Operation};

/// Most lines a draft or a return may list.
const MAX_LINES: usize = 100;
/// Upper bound of a line quantity given through the API.
const MAX_QUANTITY: u32 = 10_000;
/// Longest free-text reason or payment token accepted.
const MAX_TEXT: usize = 500;
/// The OpenAPI tag of the order routes.
const TAG: &str = "orders";

/// The order routes.
pub fn router() -> ApiRouter {
    let anyone = &[Role::Customer, Role::Staff, Role::Admin];
    let staff = &[Role::Staff, Role::Admin];
    let order_id = ("order_id", "The order's UUID.");
    let return_id = (
        "return_id",
        "The return's UUID, as answered by the return request.",
    );
    let sku = ("sku", "The SKU of the line.");
    let order_problems: &[&str] = &["invalid_id", "not_found"];
    ApiRouter::new()
        .route(
            Operation::get("/orders/{order_id}")
                .summary("An order: status, lines, totals, payments, shipments, returns")
                .tag(TAG)
                .roles(anyone)
                .path_param(order_id.0, order_id.1)
                .query::<OrderQuery>()
                .reply::<OrderBody>(200)
                .problems(&["invalid_id", "not_found", "invalid_query", "invalid_as_of", "forbidden"]),
            get(get_order),
        )
        .route(
            Operation::post("/orders/{order_id}/cancel")
                .summary("Cancel an order before it ships")
                .description("Customers may only give `customer_requested` (the default for them); staff default to `merchant_requested`.")
                .tag(TAG)
                .roles(anyone)
                .command()
                .path_param(order_id.0, order_id.1)
                .body::<CancelBody>()
                .reply::<CommandReplyBody>(200)
                .problems(order_problems)
                .problems(errors::ORDER_CODES),
            post(cancel_order),
        )
        .route(
            Operation::put("/orders/{order_id}/lines/{sku}")
                .summary("Change a line's quantity before fulfilment")
                .tag(TAG)
                .roles(anyone)
                .command()
                .path_param(order_id.0, order_id.1)
                .path_param(sku.0, sku.1)
                .body::<LineQuantityBody>()
                .reply::<CommandReplyBody>(200)
                .problems(order_problems)
                .problems(errors::ORDER_CODES),
            put(change_line_quantity),
        )
        .route(
            Operation::delete("/orders/{order_id}/lines/{sku}")
                .summary("Remove a line before fulfilment")
                .tag(TAG)
                .roles(anyone)
                .command()
                .path_param(order_id.0, order_id.1)
                .path_param(sku.0, sku.1)
                .reply::<CommandReplyBody>(200)
                .problems(order_problems)
                .problems(errors::ORDER_CODES),
            delete(remove_line),
        )
        .route(
            Operation::put("/orders/{order_id}/shipping-address")
                .summary("Ship to another address before fulfilment")
                .description("The shipping charge stays; the tax rate is the new address's.")
                .tag(TAG)
                .roles(anyone)
                .command()
                .path_param(order_id.0, order_id.1)
                .body::<OrderAddressBody>()
                .reply::<CommandReplyBody>(200)
                .problems(order_problems)
                .problems(errors::ORDER_CODES)
                .problems(&["tax_rate_missing"]),
            put(change_shipping_address),
        )
        .route(
            Operation::post("/orders/{order_id}/returns")
                .summary("Ask to send delivered units back")
                .description("The return id is the command id (stable under one `Idempotency-Key`) and is answered as `return_id`.")
                .tag(TAG)
                .roles(anyone)
                .command()
                .path_param(order_id.0, order_id.1)
                .body::<ReturnBody>()
                .reply::<ReturnReplyBody>(201)
                .problems(order_problems)
                .problems(errors::ORDER_CODES),
            post(request_return),
        )
        .route(
            Operation::post("/orders/{order_id}/returns/{return_id}/exchange")
                .summary("Ask for a replacement instead of a refund")
                .description("The replacement order's id is derived from the return id.")
                .tag(TAG)
                .roles(anyone)
                .command()
                .path_param(order_id.0, order_id.1)
                .path_param(return_id.0, return_id.1)
                .reply::<ExchangeReplyBody>(200)
                .problems(order_problems)
                .problems(errors::ORDER_CODES),
            post(request_exchange),
        )
        .route(
            Operation::post("/orders/drafts")
                .summary("Open a draft order for a customer, priced from the catalogue")
                .description("The order id is the command id (stable under one `Idempotency-Key`).")
                .tag(TAG)
                .roles(staff)
                .command()
                .body::<DraftBody>()
                .reply::<CommandReplyBody>(201)
                .problems(errors::ORDER_CODES)
                .problems(errors::LOOKUP_CODES)
                .problems(&["tax_rate_missing"]),
            post(open_draft),
        )
        .route(
            Operation::post("/orders/{order_id}/lines")
                .summary("Add a line to a draft, priced from the catalogue")
                .tag(TAG)
                .roles(staff)
                .command()
                .path_param(order_id.0, order_id.1)
                .body::<DraftLineBody>()
                .reply::<CommandReplyBody>(200)
                .problems(order_problems)
                .problems(errors::ORDER_CODES)
                .problems(errors::LOOKUP_CODES),
            post(add_line),
        )
        .route(
            Operation::post("/orders/{order_id}/finalise")
                .summary("Turn a draft into a placed order")
                .tag(TAG)
                .roles(staff)
                .command()
                .path_param(order_id.0, order_id.1)
                .reply::<CommandReplyBody>(200)
                .problems(order_problems)
                .problems(errors::ORDER_CODES),
            post(finalise_draft),
        )
        .route(
            Operation::post("/orders/{order_id}/confirm")
                .summary("Accept a placed order for fulfilment")
                .tag(TAG)
                .roles(staff)
                .command()
                .path_param(order_id.0, order_id.1)
                .reply::<CommandReplyBody>(200)
                .problems(order_problems)
                .problems(errors::ORDER_CODES),
            post(confirm_order),
        )
        .route(
            Operation::post("/orders/{order_id}/returns/{return_id}/approve")
                .summary("Approve a requested return")
                .tag(TAG)
                .roles(staff)
                .command()
                .path_param(order_id.0, order_id.1)
                .path_param(return_id.0, return_id.1)
                .reply::<CommandReplyBody>(200)
                .problems(order_problems)
                .problems(errors::ORDER_CODES),
            post(approve_return),
        )
        .route(
            Operation::post("/orders/{order_id}/returns/{return_id}/reject")
                .summary("Reject a requested return")
                .tag(TAG)
                .roles(staff)
                .command()
                .path_param(order_id.0, order_id.1)
                .path_param(return_id.0, return_id.1)
                .body::<RejectBody>()
                .reply::<CommandReplyBody>(200)
                .problems(order_problems)
                .problems(errors::ORDER_CODES),
            post(reject_return),
        )
        .route(
            Operation::post("/orders/{order_id}/returns/{return_id}/receive")
                .summary("Record that an approved return arrived back")
                .tag(TAG)
                .roles(staff)
                .command()
                .path_param(order_id.0, order_id.1)
                .path_param(return_id.0, return_id.1)
                .reply::<CommandReplyBody>(200)
                .problems(order_problems)
                .problems(errors::ORDER_CODES),
            post(receive_return),
        )
}

// ---------------------------------------------------------------------------------------
// Request and response bodies
// ---------------------------------------------------------------------------------------

/// Why an order is cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CancelReasonBody {
    CustomerRequested,
    MerchantRequested,
    PaymentDeclined,
    FraudRejected,
    OutOfStock,
    DraftDiscarded,
}

impl From<CancelReasonBody> for CancellationReason {
    fn from(reason: CancelReasonBody) -> Self {
        match reason {
            CancelReasonBody::CustomerRequested => Self::CustomerRequested,
            CancelReasonBody::MerchantRequested => Self::MerchantRequested,
            CancelReasonBody::PaymentDeclined => Self::PaymentDeclined,
            CancelReasonBody::FraudRejected => Self::FraudRejected,
            CancelReasonBody::OutOfStock => Self::OutOfStock,
            CancelReasonBody::DraftDiscarded => Self::DraftDiscarded,
        }
    }
}

/// `POST /orders/{order_id}/cancel`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    /// Defaults to `customer_requested` for customers, `merchant_requested` for staff.
    #[serde(default)]
    pub reason: Option<CancelReasonBody>,
}

/// `PUT /orders/{order_id}/lines/{sku}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LineQuantityBody {
    #[schemars(range(min = 1, max = 10_000))]
    pub quantity: u32,
}

/// `PUT /orders/{order_id}/shipping-address`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderAddressBody {
    pub address: Address,
}

/// A quantity of one SKU.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnLineBody {
    pub sku: Sku,
    #[schemars(range(min = 1, max = 10_000))]
    pub quantity: u32,
}

/// `POST /orders/{order_id}/returns`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnBody {
    #[schemars(length(min = 1, max = 100))]
    pub lines: Vec<ReturnLineBody>,
    #[schemars(length(min = 1, max = 500))]
    pub reason: String,
}

/// `POST /orders/{order_id}/returns/{return_id}/reject`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectBody {
    #[schemars(length(min = 1, max = 500))]
    pub reason: String,
}

/// A draft line: a catalogue product at its price in the order's currency.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DraftLineBody {
    pub sku: Sku,
    #[schemars(range(min = 1, max = 10_000))]
    pub quantity: u32,
    /// Discount on the whole line in minor units of the order's currency (default 0).
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub discount: i64,
}

/// `POST /orders/drafts`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DraftBody {
    pub customer_id: CustomerId,
    pub currency: Currency,
    #[schemars(length(min = 1, max = 100))]
    pub lines: Vec<DraftLineBody>,
    pub shipping_address: Address,
    /// Defaults to the shipping address.
    #[serde(default)]
    pub billing_address: Option<Address>,
    /// A shipping method code, priced in `currency`.
    #[schemars(length(min = 1, max = 64))]
    pub shipping_method: String,
    /// How the customer pays (a provider token, or e.g. `invoice`).
    #[schemars(length(min = 1, max = 500))]
    pub payment_method_token: String,
}

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatusBody {
    Draft,
    Placed,
    Confirmed,
    Cancelled,
    Completed,
}

/// One shipment of the order.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ShipmentBody {
    pub shipment_id: ShipmentId,
    pub lines: Vec<LineQuantity>,
    pub delivered: bool,
}

/// Where a return stands.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReturnStatusBody {
    Requested,
    Approved,
    Rejected,
    Received,
}

/// One return of the order.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ReturnRecordBody {
    pub return_id: ReturnId,
    pub lines: Vec<LineQuantity>,
    pub status: ReturnStatusBody,
    /// The replacement order, when an exchange was requested.
    pub exchange_order_id: Option<OrderId>,
}

/// `GET /orders/{order_id}`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct OrderBody {
    pub order_id: OrderId,
    pub customer_id: CustomerId,
    pub status: OrderStatusBody,
    pub lines: Vec<OrderLine>,
    pub totals: OrderTotals,
    pub tax_rate_bp: u32,
    pub shipping_address: Address,
    /// Captured so far, over all payments.
    pub paid: Money,
    pub refunded: Money,
    pub shipments: Vec<ShipmentBody>,
    /// Every unit of every line has been delivered.
    pub fully_delivered: bool,
    pub returns: Vec<ReturnRecordBody>,
    /// The stream version; send it back as `If-Match`.
    pub version: i64,
}

/// `POST /orders/{order_id}/returns`: the command reply plus the new return's id.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ReturnReplyBody {
    #[serde(flatten)]
    pub reply: CommandReplyBody,
    pub return_id: ReturnId,
}

/// `POST /orders/{order_id}/returns/{return_id}/exchange`: the command reply plus the id
/// the replacement order will have.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ExchangeReplyBody {
    #[serde(flatten)]
    pub reply: CommandReplyBody,
    pub replacement_order_id: OrderId,
}

// ---------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------

/// Query of `GET /orders/{order_id}`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderQuery {
    /// Staff only: the order as it was at this global position or RFC 3339 time,
    /// replayed from its events.
    #[serde(default)]
    pub as_of: Option<String>,
}

async fn get_order(
    CustomerOrStaff(principal): CustomerOrStaff,
    State(state): State<AppState>,
    Path(order_id): Path<String>,
    query: Result<Query<OrderQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let order_id = path_uuid(&order_id)?;
    let Query(query) = query.map_err(|r| row::INVALID_QUERY.problem(r.body_text()))?;
    let Loaded {
        state: order,
        version,
    } = match &query.as_of {
        Some(as_of) => super::streams::order_as_of(&state, &principal, order_id, as_of).await?,
        None => owned::<Order>(&state, &principal, order_id).await?,
    };
    let status = match order.status {
        OrderStatus::Draft => OrderStatusBody::Draft,
        OrderStatus::Placed => OrderStatusBody::Placed,
        OrderStatus::Confirmed => OrderStatusBody::Confirmed,
        OrderStatus::Cancelled => OrderStatusBody::Cancelled,
        OrderStatus::Completed => OrderStatusBody::Completed,
        // `owned` answers only orders that exist, which are placed at least as drafts.
        OrderStatus::NotPlaced => {
            return Err(super::carts::not_found::<Order>(&order_id.to_string()))
        }
    };
    let Some(details) = order.details else {
        return Err(super::carts::not_found::<Order>(&order_id.to_string()));
    };
    let body = OrderBody {
        order_id: details.order_id,
        customer_id: details.customer_id,
        status,
        lines: details.lines.into_iter().map(|l| l.line).collect(),
        totals: details.totals,
        tax_rate_bp: details.tax_rate_bp,
        shipping_address: details.shipping_address,
        paid: details.paid,
        refunded: details.refunded,
        shipments: order
            .shipments
            .into_iter()
            .map(|(shipment_id, (lines, delivered))| ShipmentBody {
                shipment_id,
                lines,
                delivered,
            })
            .collect(),
        fully_delivered: order.fully_delivered,
        returns: order
            .returns
            .into_iter()
            .map(|(return_id, r)| ReturnRecordBody {
                return_id,
                lines: r.lines,
                status: match r.status {
                    ReturnStatus::Requested => ReturnStatusBody::Requested,
                    ReturnStatus::Approved => ReturnStatusBody::Approved,
                    ReturnStatus::Rejected => ReturnStatusBody::Rejected,
                    ReturnStatus::Received => ReturnStatusBody::Received,
                },
                exchange_order_id: r.exchange_order,
            })
            .collect(),
        version,
    };
    Ok(with_etag(StatusCode::OK, version, body))
}

async fn cancel_order(
    CustomerOrStaff(principal): CustomerOrStaff,
    State(state): State<AppState>,
    meta: CommandMeta,
    Path(order_id): Path<String>,
    ApiJson(body): ApiJson<CancelBody>,
) -> Result<CommandReply, Problem> {
    let order_id = path_uuid(&order_id)?;
    let reason = match (principal.is_staff(), body.reason) {
        (true, reason) => reason.unwrap_or(CancelReasonBody::MerchantRequested),
        (false, None | Some(CancelReasonBody::CustomerRequested)) => {
            CancelReasonBody::CustomerRequested
        }
        (false, Some(_)) => {
            return Err(row::FORBIDDEN.problem("a customer may only cancel as `customer_requested`"))
        }
    };
    let command = OrderCommand::CancelOrder(CancelOrder {
        reason: reason.into(),
        at: state.store.clock().now(),
    });
    run(&state, &meta, order_id, command).await
}

async fn change_line_quantity(
    CustomerOrStaff(_): CustomerOrStaff,
    State(state): State<AppState>,
    meta: CommandMeta,
    Path((order_id, sku)): Path<(String, String)>,
    ApiJson(body): ApiJson<LineQuantityBody>,
) -> Result<CommandReply, Problem> {
    let order_id = path_uuid(&order_id)?;
    let sku = path_sku(&sku)?;
    let command = OrderCommand::ChangeLineQuantity(ChangeLineQuantity {
        sku,
        quantity: quantity(body.quantity)?,
        at: state.store.clock().now(),
    });
    run(&state, &meta, order_id, command).await
}

async fn remove_line(
    CustomerOrStaff(_): CustomerOrStaff,
    State(state): State<AppState>,
    meta: CommandMeta,
    Path((order_id, sku)): Path<(String, String)>,
) -> Result<CommandReply, Problem> {
    let order_id = path_uuid(&order_id)?;
    let command = OrderCommand::RemoveLine(RemoveLine {
        sku: path_sku(&sku)?,
        at: state.store.clock().now(),
    });
    run(&state, &meta, order_id, command).await
}

/// The order keeps its shipping charge (the method was priced at checkout and the order
/// does not record which one it was); the tax rate is looked up for the new address.
async fn change_shipping_address(
    CustomerOrStaff(principal): CustomerOrStaff,
    State(state): State<AppState>,
    meta: CommandMeta,
    Path(order_id): Path<String>,
    ApiJson(body): ApiJson<OrderAddressBody>,
) -> Result<CommandReply, Problem> {
    let order_id = path_uuid(&order_id)?;
    check_address(&body.address)?;
    let order = owned::<Order>(&state, &principal, order_id).await?;
    let shipping = order
        .state
        .details
        .as_ref()
        .map(|d| d.totals.shipping)
        .ok_or_else(|| super::carts::not_found::<Order>(&order_id.to_string()))?;
    let tax_rates = state.commands.tax_rates().await?;
    let command = OrderCommand::ChangeShippingAddress(ChangeShippingAddress {
        tax_rate_bp: rate_for(&body.address, &tax_rates)?,
        address: body.address,
        shipping,
        at: state.store.clock().now(),
    });
    run(&state, &meta, order_id, command).await
}

async fn request_return(
    CustomerOrStaff(_): CustomerOrStaff,
    State(state): State<AppState>,
    meta: CommandMeta,
    Path(order_id): Path<String>,
    ApiJson(body): ApiJson<ReturnBody>,
) -> Result<Response, Problem> {
    let order_id = path_uuid(&order_id)?;
    let reason = text(body.reason, "reason")?;
    let lines = line_quantities(body.lines)?;
    owned::<Order>(&state, &meta.principal, order_id).await?;
    let ctx = meta.context();
    let return_id = ReturnId::from_uuid(ctx.command_id);
    let command = OrderCommand::RequestReturn(RequestReturn {
        return_id,
        lines,
        reason,
        window_days: None,
        at: state.store.clock().now(),
    });
    let done = state
        .commands
        .execute::<Order>(&ctx, &order_id.to_string(), command)
        .await?;
    let reply = CommandReply::created(&done);
    let body = ReturnReplyBody {
        reply: reply.body,
        return_id,
    };
    Ok(with_etag(StatusCode::CREATED, done.version, body))
}

async fn request_exchange(
    CustomerOrStaff(_): CustomerOrStaff,
    State(state): State<AppState>,
    meta: CommandMeta,
    Path((order_id, return_id)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let order_id = path_uuid(&order_id)?;
    let return_id = ReturnId::from_uuid(path_uuid(&return_id)?);
    let replacement_order_id = exchange_order_id(return_id);
    let command = OrderCommand::RequestExchange(RequestExchange {
        return_id,
        replacement_order_id,
        at: state.store.clock().now(),
    });
    let reply = run(&state, &meta, order_id, command).await?;
    let version = reply.body.version;
    let body = ExchangeReplyBody {
        reply: reply.body,
        replacement_order_id,
    };
    Ok(with_etag(StatusCode::OK, version, body))
}

/// The id of the order that replaces the units of return `return_id`.
pub fn exchange_order_id(return_id: ReturnId) -> OrderId {
    OrderId::from_uuid(CommandContext::derived_id(
        "exchange",
        &return_id.to_string(),
    ))
}

async fn open_draft(
    Staff(_): Staff,
    State(state): State<AppState>,
    meta: CommandMeta,
    ApiJson(body): ApiJson<DraftBody>,
) -> Result<CommandReply, Problem> {
    if body.lines.is_empty() || body.lines.len() > MAX_LINES {
        return Err(invalid_body(format!("a draft has 1 to {MAX_LINES} lines")));
    }
    check_address(&body.shipping_address)?;
    if let Some(billing) = &body.billing_address {
        check_address(billing)?;
    }
    if body.shipping_method.is_empty() || body.shipping_method.len() > 64 {
        return Err(invalid_body(
            "a shipping method code has 1 to 64 characters",
        ));
    }
    let payment_method_token = text(body.payment_method_token, "payment_method_token")?;
    let mut lines = Vec::with_capacity(body.lines.len());
    for line in body.lines {
        lines.push(priced_line(&state, line, body.currency).await?);
    }
    let shipping = state
        .commands
        .shipping_method(&body.shipping_method, body.currency)
        .await?
        .price;
    let tax_rates = state.commands.tax_rates().await?;
    let ctx = meta.context();
    let order_id = OrderId::from_uuid(ctx.command_id);
    let command = OrderCommand::PlaceOrder(PlaceOrder {
        order_id,
        customer_id: body.customer_id,
        cart_id: None,
        currency: body.currency,
        lines,
        shipping,
        tax_rate_bp: rate_for(&body.shipping_address, &tax_rates)?,
        points_value: Money::zero(body.currency),
        billing_address: body
            .billing_address
            .unwrap_or_else(|| body.shipping_address.clone()),
        shipping_address: body.shipping_address,
        payment_method_token,
        draft: true,
        at: state.store.clock().now(),
    });
    let done = state
        .commands
        .execute::<Order>(&ctx, &order_id.to_string(), command)
        .await?;
    Ok(CommandReply::created(&done))
}

async fn add_line(
    Staff(principal): Staff,
    State(state): State<AppState>,
    meta: CommandMeta,
    Path(order_id): Path<String>,
    ApiJson(body): ApiJson<DraftLineBody>,
) -> Result<CommandReply, Problem> {
    let order_id = path_uuid(&order_id)?;
    let order = owned::<Order>(&state, &principal, order_id).await?;
    let currency = order
        .state
        .details
        .as_ref()
        .map(|d| d.totals.currency)
        .ok_or_else(|| super::carts::not_found::<Order>(&order_id.to_string()))?;
    let command = OrderCommand::AddLine(AddLine {
        line: priced_line(&state, body, currency).await?,
        at: state.store.clock().now(),
    });
    run(&state, &meta, order_id, command).await
}

async fn finalise_draft(
    Staff(_): Staff,
    State(state): State<AppState>,
    meta: CommandMeta,
    Path(order_id): Path<String>,
) -> Result<CommandReply, Problem> {
    let order_id = path_uuid(&order_id)?;
    let command = OrderCommand::FinaliseDraft {
        at: state.store.clock().now(),
    };
    run(&state, &meta, order_id, command).await
}

async fn confirm_order(
    Staff(_): Staff,
    State(state): State<AppState>,
    meta: CommandMeta,
    Path(order_id): Path<String>,
) -> Result<CommandReply, Problem> {
    let order_id = path_uuid(&order_id)?;
    let command = OrderCommand::ConfirmOrder {
        at: state.store.clock().now(),
    };
    run(&state, &meta, order_id, command).await
}

async fn approve_return(
    Staff(_): Staff,
    State(state): State<AppState>,
    meta: CommandMeta,
    Path((order_id, return_id)): Path<(String, String)>,
) -> Result<CommandReply, Problem> {
    let order_id = path_uuid(&order_id)?;
    let command = OrderCommand::ApproveReturn(ApproveReturn {
        return_id: ReturnId::from_uuid(path_uuid(&return_id)?),
        at: state.store.clock().now(),
    });
    run(&state, &meta, order_id, command).await
}

async fn reject_return(
    Staff(_): Staff,
    State(state): State<AppState>,
    meta: CommandMeta,
    Path((order_id, return_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<RejectBody>,
) -> Result<CommandReply, Problem> {
    let order_id = path_uuid(&order_id)?;
    let return_id = ReturnId::from_uuid(path_uuid(&return_id)?);
    let command = OrderCommand::RejectReturn(RejectReturn {
        return_id,
        reason: text(body.reason, "reason")?,
        at: state.store.clock().now(),
    });
    run(&state, &meta, order_id, command).await
}

async fn receive_return(
    Staff(_): Staff,
    State(state): State<AppState>,
    meta: CommandMeta,
    Path((order_id, return_id)): Path<(String, String)>,
) -> Result<CommandReply, Problem> {
    let order_id = path_uuid(&order_id)?;
    let command = OrderCommand::ReceiveReturn(ReceiveReturn {
        return_id: ReturnId::from_uuid(path_uuid(&return_id)?),
        at: state.store.clock().now(),
    });
    run(&state, &meta, order_id, command).await
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Runs an order command on an existing order and answers `200`.
///
/// The order must exist and be the caller's first: the command layer alone would answer
/// a missing order with the domain's refusal and another customer's with 404, which
/// would tell the two apart.
async fn run(
    state: &AppState,
    meta: &CommandMeta,
    order_id: Uuid,
    command: OrderCommand,
) -> Result<CommandReply, Problem> {
    owned::<Order>(state, &meta.principal, order_id).await?;
    let done = state
        .commands
        .execute::<Order>(&meta.context(), &order_id.to_string(), command)
        .await?;
    Ok(CommandReply::ok(&done))
}

/// A draft line priced from the catalogue in `currency`.
async fn priced_line(
    state: &AppState,
    line: DraftLineBody,
    currency: Currency,
) -> Result<NewOrderLine, Problem> {
    let quantity = quantity(line.quantity)?;
    if line.discount < 0 {
        return Err(invalid_body("a line discount cannot be negative"));
    }
    let (product, unit_price) = state.commands.catalogue_line(&line.sku, currency).await?;
    Ok(NewOrderLine {
        sku: line.sku,
        name: product.name,
        quantity,
        unit_price,
        discount: Money::new(line.discount, currency),
    })
}

fn quantity(quantity: u32) -> Result<Quantity, Problem> {
    if quantity == 0 || quantity > MAX_QUANTITY {
        return Err(invalid_body(format!(
            "a quantity must be 1 to {MAX_QUANTITY}, got {quantity}"
        )));
    }
    Ok(Quantity::new(quantity))
}

fn line_quantities(lines: Vec<ReturnLineBody>) -> Result<Vec<LineQuantity>, Problem> {
    if lines.is_empty() || lines.len() > MAX_LINES {
        return Err(invalid_body(format!(
            "a return lists 1 to {MAX_LINES} lines"
        )));
    }
    lines
        .into_iter()
        .map(|l| {
            Ok(LineQuantity {
                sku: l.sku,
                quantity: quantity(l.quantity)?,
            })
        })
        .collect()
}

/// A free text of 1 to [`MAX_TEXT`] characters, trimmed.
fn text(value: String, field: &str) -> Result<String, Problem> {
    let trimmed = value.trim();
    if trimmed.is_empty() || trimmed.chars().count() > MAX_TEXT {
        return Err(invalid_body(format!(
            "`{field}` must have 1 to {MAX_TEXT} characters"
        )));
    }
    Ok(trimmed.to_string())
}

/// The tax rate of `address`; an address the shop has no rate for is a refusal of the
/// same rule checkout applies.
fn rate_for(address: &Address, tax_rates: &TaxRates) -> Result<u32, Problem> {
    tax_rate(address, tax_rates).map_err(|e| CommandError::Domain(DomainError::from(e)).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchange_ids_are_stable_per_return_and_differ_between_returns() {
        let a = ReturnId::from_uuid(Uuid::now_v7());
        let b = ReturnId::from_uuid(Uuid::now_v7());
        assert_eq!(exchange_order_id(a), exchange_order_id(a));
        assert_ne!(exchange_order_id(a), exchange_order_id(b));
        assert_ne!(exchange_order_id(a).0, a.0);
    }

    #[test]
    fn free_text_is_trimmed_and_bounded() {
        assert_eq!(
            text("  broken  ".into(), "reason").ok(),
            Some("broken".into())
        );
        assert!(text("   ".into(), "reason").is_err());
        assert!(text("x".repeat(MAX_TEXT + 1), "reason").is_err());
    }

    #[test]
    fn quantities_outside_the_bounds_are_refused() {
        assert!(quantity(0).is_err());
        assert!(quantity(MAX_QUANTITY + 1).is_err());
        assert_eq!(quantity(3).ok(), Some(Quantity::new(3)));
    }
}

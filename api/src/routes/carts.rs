//! Cart routes: a customer (or staff on a customer's behalf) opens a cart, fills it,
//! chooses where and how it ships, redeems points and checks it out into an order.
//!
//! Every command route loads the cart first: its currency prices the lookups, and a
//! cart of another customer must answer 404 before any lookup can tell it apart from a
//! missing one.
//!
//! This module also holds the small helpers the customer-facing route modules share
//! (path ids, ownership checks, address bounds, replies that carry a new id).

use aggregates::cart::{
    AddItem, ApplyCoupon, Cart, CartCommand, CartLine, CartStatus, CartTotals, ChangeItemQuantity,
    CheckOutWithPayment, CheckoutPayment, LoyaltyRedemption, OpenCart, RemoveCoupon, RemoveItem,
    SetLoyaltyPoints, SetShippingAddress, SetShippingMethod, ShippingMethod,
    DEFAULT_MAX_QUANTITY_PER_LINE,
};
use aggregates::loyalty::{LoyaltyAccount, LoyaltyError};
use aggregates::promotion::PromotionCode;
use aggregates::{
    Address, CartId, CountryCode, Currency, CustomerId, DomainError, EventSourced, Money, OrderId,
    Quantity, Sku,
};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Json;
use infra::command::{CommandContext, CommandError, Loaded};
use infra::StreamRef;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::input::{etag, invalid_body, path_coupon_code, path_sku, path_uuid};
use crate::http::command::{CommandMeta, CommandReply, CommandReplyBody};
use crate::http::errors::{self, row};
use crate::http::json::ApiJson;
use crate::http::principal::{CustomerOrStaff, Principal, Role};
use crate::http::problem::Problem;
use crate::http::{ApiRouter, AppState, Operation};

/// Longest coupon code accepted in a body, before normalisation trims it.
const MAX_COUPON_INPUT: usize = 64;
/// Longest shipping method code accepted.
const MAX_METHOD_CODE: usize = 64;
/// Most loyalty points one cart may redeem (a bound on input, far above any balance).
const MAX_POINTS: u64 = 100_000_000;
/// Longest address field accepted.
const MAX_ADDRESS_FIELD: usize = 200;
/// Longest payment method token accepted.
const MAX_PAYMENT_TOKEN: usize = 200;

/// Problems every cart command on an existing cart can answer, besides the cart's own
/// rules ([`errors::CART_CODES`]).
const CART_PROBLEMS: &[&str] = &["invalid_id", "not_found"];

/// The cart routes.
pub fn router() -> ApiRouter {
    let roles = &[Role::Customer, Role::Staff, Role::Admin];
    let cart_id = ("cart_id", "The cart's UUID.");
    let sku = ("sku", "The SKU of the line.");
    ApiRouter::new()
        .route(
            Operation::post("/carts")
                .summary("Open a cart")
                .description("The cart id is the command id: retrying with the same `Idempotency-Key` targets the same cart. Staff name the customer in `customer_id`.")
                .tag(TAG)
                .roles(roles)
                .command()
                .body::<OpenCartBody>()
                .reply::<CommandReplyBody>(201)
                .problems(errors::CART_CODES),
            post(open_cart),
        )
        .route(
            Operation::get("/carts/{cart_id}")
                .summary("A cart with its live totals")
                .tag(TAG)
                .roles(roles)
                .path_param(cart_id.0, cart_id.1)
                .reply::<CartBody>(200)
                .problems(CART_PROBLEMS),
            get(get_cart),
        )
        .route(
            Operation::post("/carts/{cart_id}/items")
                .summary("Add units of a product, at its catalogue price")
                .tag(TAG)
                .roles(roles)
                .command()
                .path_param(cart_id.0, cart_id.1)
                .body::<AddItemBody>()
                .reply::<CommandReplyBody>(200)
                .problems(CART_PROBLEMS)
                .problems(errors::CART_CODES)
                .problems(errors::LOOKUP_CODES),
            post(add_item),
        )
        .route(
            Operation::put("/carts/{cart_id}/items/{sku}")
                .summary("Set a line's quantity")
                .tag(TAG)
                .roles(roles)
                .command()
                .path_param(cart_id.0, cart_id.1)
                .path_param(sku.0, sku.1)
                .body::<QuantityBody>()
                .reply::<CommandReplyBody>(200)
                .problems(CART_PROBLEMS)
                .problems(errors::CART_CODES),
            put(change_item_quantity),
        )
        .route(
            Operation::delete("/carts/{cart_id}/items/{sku}")
                .summary("Remove a line")
                .tag(TAG)
                .roles(roles)
                .command()
                .path_param(cart_id.0, cart_id.1)
                .path_param(sku.0, sku.1)
                .reply::<CommandReplyBody>(200)
                .problems(CART_PROBLEMS)
                .problems(errors::CART_CODES),
            delete(remove_item),
        )
        .route(
            Operation::post("/carts/{cart_id}/coupons")
                .summary("Apply a coupon")
                .tag(TAG)
                .roles(roles)
                .command()
                .path_param(cart_id.0, cart_id.1)
                .body::<ApplyCouponBody>()
                .reply::<CommandReplyBody>(200)
                .problems(CART_PROBLEMS)
                .problems(errors::CART_CODES)
                .problems(errors::LOOKUP_CODES),
            post(apply_coupon),
        )
        .route(
            Operation::delete("/carts/{cart_id}/coupons/{code}")
                .summary("Remove a coupon")
                .tag(TAG)
                .roles(roles)
                .command()
                .path_param(cart_id.0, cart_id.1)
                .path_param("code", "The coupon code (any case).")
                .reply::<CommandReplyBody>(200)
                .problems(CART_PROBLEMS)
                .problems(errors::CART_CODES),
            delete(remove_coupon),
        )
        .route(
            Operation::put("/carts/{cart_id}/shipping-address")
                .summary("Set where the cart ships")
                .tag(TAG)
                .roles(roles)
                .command()
                .path_param(cart_id.0, cart_id.1)
                .body::<AddressBody>()
                .reply::<CommandReplyBody>(200)
                .problems(CART_PROBLEMS)
                .problems(errors::CART_CODES),
            put(set_shipping_address),
        )
        .route(
            Operation::put("/carts/{cart_id}/shipping-method")
                .summary("Choose a shipping method, priced in the cart's currency")
                .tag(TAG)
                .roles(roles)
                .command()
                .path_param(cart_id.0, cart_id.1)
                .body::<ShippingMethodBody>()
                .reply::<CommandReplyBody>(200)
                .problems(CART_PROBLEMS)
                .problems(errors::CART_CODES)
                .problems(errors::LOOKUP_CODES),
            put(set_shipping_method),
        )
        .route(
            Operation::put("/carts/{cart_id}/loyalty-points")
                .summary("Redeem loyalty points at checkout (0 clears)")
                .description("The customer must have the points now; they are held at checkout.")
                .tag(TAG)
                .roles(roles)
                .command()
                .path_param(cart_id.0, cart_id.1)
                .body::<LoyaltyPointsBody>()
                .reply::<CommandReplyBody>(200)
                .problems(CART_PROBLEMS)
                .problems(errors::CART_CODES)
                .problems(errors::LOOKUP_CODES)
                .problems(&["loyalty_not_enrolled", "insufficient_points"]),
            put(set_loyalty_points),
        )
        .route(
            Operation::post("/carts/{cart_id}/checkout")
                .summary("Check the cart out into an order, paid with a payment method")
                .description("Freezes the cart's totals into the order `order_id`, derived from the cart id (a retry names the same order), with the payment method token (required unless nothing is due) and an optional billing address. The checkout saga then places the order from the checkout event, reserves stock, authorizes the payment and confirms it; follow it on `GET /me/orders/{order_id}`.")
                .tag(TAG)
                .roles(roles)
                .command()
                .path_param(cart_id.0, cart_id.1)
                .body::<CheckoutBody>()
                .reply::<CheckoutReplyBody>(200)
                .problems(CART_PROBLEMS)
                .problems(errors::CART_CODES)
                .problems(&["malformed_json"]),
            post(check_out),
        )
}

/// The OpenAPI tag of the cart routes.
const TAG: &str = "carts";

// ---------------------------------------------------------------------------------------
// Request and response bodies
// ---------------------------------------------------------------------------------------

/// `POST /carts`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenCartBody {
    /// Every price in the cart will be in this currency.
    pub currency: Currency,
    /// Whose cart: required for staff, and for a customer (if given) their own id.
    #[serde(default)]
    pub customer_id: Option<CustomerId>,
}

/// `POST /carts/{cart_id}/items`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddItemBody {
    pub sku: Sku,
    /// Units to add to the line.
    #[schemars(range(min = 1, max = 99))]
    pub quantity: u32,
}

/// `PUT /carts/{cart_id}/items/{sku}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuantityBody {
    /// The line's new quantity (not a delta).
    #[schemars(range(min = 1, max = 99))]
    pub quantity: u32,
}

/// `POST /carts/{cart_id}/coupons`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyCouponBody {
    /// The coupon code as typed: case and surrounding spaces do not matter.
    #[schemars(length(min = 1, max = 64))]
    pub code: String,
}

/// `PUT /carts/{cart_id}/shipping-address` (and the order's).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressBody {
    pub address: Address,
}

/// `PUT /carts/{cart_id}/shipping-method`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShippingMethodBody {
    /// One of the shop's shipping method codes.
    #[schemars(length(min = 1, max = 64))]
    pub code: String,
}

/// `PUT /carts/{cart_id}/loyalty-points`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoyaltyPointsBody {
    /// Points to redeem at checkout; `0` clears the redemption.
    #[schemars(range(max = 100_000_000))]
    pub points: u64,
}

/// `POST /carts/{cart_id}/checkout`: how the order is paid. An empty body is a checkout
/// without a payment method, refused unless nothing is due.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutBody {
    /// The payment provider's token for the customer's payment method (test provider:
    /// `tok_visa`, `tok_3ds`, `tok_insufficient_funds`, …). Required unless nothing is
    /// due.
    #[serde(default)]
    #[schemars(length(min = 1, max = 200))]
    pub payment_method_token: Option<String>,
    /// Where the payment method is billed; the shipping address when absent.
    #[serde(default)]
    pub billing_address: Option<Address>,
}

/// Where a cart is in its life.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum CartStatusBody {
    Open,
    /// Checked out into the order `order_id`.
    CheckedOut {
        order_id: OrderId,
    },
    Abandoned,
}

impl From<CartStatus> for CartStatusBody {
    fn from(status: CartStatus) -> Self {
        match status {
            CartStatus::Open => Self::Open,
            CartStatus::CheckedOut(order_id) => Self::CheckedOut { order_id },
            CartStatus::Abandoned => Self::Abandoned,
        }
    }
}

/// An applied coupon and what it takes off now.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CartCouponBody {
    pub code: PromotionCode,
    /// Off the items; absent when the totals cannot be computed (see `totals_problem`).
    pub item_discount: Option<Money>,
    /// Off shipping; absent when the totals cannot be computed.
    pub shipping_discount: Option<Money>,
}

/// `GET /carts/{cart_id}`: the cart as it stands, with live totals.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CartBody {
    pub cart_id: CartId,
    pub customer_id: Option<CustomerId>,
    pub currency: Option<Currency>,
    pub status: CartStatusBody,
    pub lines: Vec<CartLine>,
    pub coupons: Vec<CartCouponBody>,
    pub shipping_address: Option<Address>,
    pub shipping_method: Option<ShippingMethod>,
    pub loyalty_points: Option<LoyaltyRedemption>,
    /// Totals as the customer would pay now; absent when a rule makes them
    /// uncomputable (a coupon no longer applies, no tax rate for the address). A
    /// checked-out cart's binding figures are the ones frozen into its order.
    pub totals: Option<CartTotals>,
    /// Why `totals` is absent.
    pub totals_problem: Option<String>,
    /// The stream version; send it back as `If-Match`.
    pub version: i64,
}

/// `POST /carts/{cart_id}/checkout`: the command reply plus the id of the order the
/// cart becomes.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CheckoutReplyBody {
    #[serde(flatten)]
    pub reply: CommandReplyBody,
    pub order_id: OrderId,
}

// ---------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------

async fn open_cart(
    CustomerOrStaff(principal): CustomerOrStaff,
    State(state): State<AppState>,
    meta: CommandMeta,
    ApiJson(body): ApiJson<OpenCartBody>,
) -> Result<CommandReply, Problem> {
    let customer_id = acting_customer(&principal, body.customer_id)?;
    let ctx = meta.context();
    let cart_id = CartId::from_uuid(ctx.command_id);
    let command = CartCommand::OpenCart(OpenCart {
        cart_id,
        customer_id,
        currency: body.currency,
        at: state.store.clock().now(),
    });
    let done = state
        .commands
        .execute::<Cart>(&ctx, &cart_id.to_string(), command)
        .await?;
    Ok(CommandReply::created(&done))
}

async fn get_cart(
    CustomerOrStaff(principal): CustomerOrStaff,
    State(state): State<AppState>,
    Path(cart_id): Path<String>,
) -> Result<Response, Problem> {
    let cart_id = path_uuid(&cart_id)?;
    let Loaded {
        state: cart,
        version,
    } = owned::<Cart>(&state, &principal, cart_id).await?;
    let tax_rates = state.commands.tax_rates().await?;
    let (totals, totals_problem) = match cart.live_totals(&tax_rates, state.store.clock().now()) {
        Ok(totals) => (Some(totals), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let coupons = cart
        .coupons
        .iter()
        .map(|terms| {
            let discount = totals
                .as_ref()
                .and_then(|t| t.coupons.iter().find(|c| c.code == terms.code));
            CartCouponBody {
                code: terms.code.clone(),
                item_discount: discount.map(|d| d.item_discount),
                shipping_discount: discount.map(|d| d.shipping_discount),
            }
        })
        .collect();
    let body = CartBody {
        cart_id: CartId::from_uuid(cart_id),
        customer_id: cart.customer_id,
        currency: cart.currency,
        status: cart.status.into(),
        lines: cart.lines,
        coupons,
        shipping_address: cart.shipping_address,
        shipping_method: cart.shipping_method,
        loyalty_points: cart.loyalty,
        totals,
        totals_problem,
        version,
    };
    Ok(with_etag(StatusCode::OK, version, body))
}

async fn add_item(
    CustomerOrStaff(principal): CustomerOrStaff,
    State(state): State<AppState>,
    meta: CommandMeta,
    Path(cart_id): Path<String>,
    ApiJson(body): ApiJson<AddItemBody>,
) -> Result<CommandReply, Problem> {
    let cart_id = path_uuid(&cart_id)?;
    let quantity = line_quantity(body.quantity)?;
    let currency = cart_currency(&state, &principal, cart_id).await?;
    let (product, unit_price) = state.commands.catalogue_line(&body.sku, currency).await?;
    let command = CartCommand::AddItem(AddItem {
        sku: body.sku,
        product_name: product.name,
        category: product.category,
        quantity,
        unit_price,
        max_quantity_per_line: None,
        at: state.store.clock().now(),
    });
    run(&state, &meta, cart_id, command).await
}

async fn change_item_quantity(
    CustomerOrStaff(principal): CustomerOrStaff,
    State(state): State<AppState>,
    meta: CommandMeta,
    Path((cart_id, sku)): Path<(String, String)>,
    ApiJson(body): ApiJson<QuantityBody>,
) -> Result<CommandReply, Problem> {
    let cart_id = path_uuid(&cart_id)?;
    let sku = path_sku(&sku)?;
    let quantity = line_quantity(body.quantity)?;
    owned::<Cart>(&state, &principal, cart_id).await?;
    let command = CartCommand::ChangeItemQuantity(ChangeItemQuantity {
        sku,
        quantity,
        max_quantity_per_line: None,
        at: state.store.clock().now(),
    });
    run(&state, &meta, cart_id, command).await
}

async fn remove_item(
    CustomerOrStaff(principal): CustomerOrStaff,
    State(state): State<AppState>,
    meta: CommandMeta,
    Path((cart_id, sku)): Path<(String, String)>,
) -> Result<CommandReply, Problem> {
    let cart_id = path_uuid(&cart_id)?;
    let sku = path_sku(&sku)?;
    owned::<Cart>(&state, &principal, cart_id).await?;
    let command = CartCommand::RemoveItem(RemoveItem {
        sku,
        at: state.store.clock().now(),
    });
    run(&state, &meta, cart_id, command).await
}

async fn apply_coupon(
    CustomerOrStaff(principal): CustomerOrStaff,
    State(state): State<AppState>,
    meta: CommandMeta,
    Path(cart_id): Path<String>,
    ApiJson(body): ApiJson<ApplyCouponBody>,
) -> Result<CommandReply, Problem> {
    let cart_id = path_uuid(&cart_id)?;
    if body.code.len() > MAX_COUPON_INPUT {
        return Err(invalid_body(format!(
            "a coupon code has at most {MAX_COUPON_INPUT} characters"
        )));
    }
    owned::<Cart>(&state, &principal, cart_id).await?;
    let (_, terms) = state.commands.coupon(&body.code).await?;
    let command = CartCommand::ApplyCoupon(ApplyCoupon {
        terms,
        at: state.store.clock().now(),
    });
    run(&state, &meta, cart_id, command).await
}

async fn remove_coupon(
    CustomerOrStaff(principal): CustomerOrStaff,
    State(state): State<AppState>,
    meta: CommandMeta,
    Path((cart_id, code)): Path<(String, String)>,
) -> Result<CommandReply, Problem> {
    let cart_id = path_uuid(&cart_id)?;
    let code = path_coupon_code(&code)?;
    owned::<Cart>(&state, &principal, cart_id).await?;
    let command = CartCommand::RemoveCoupon(RemoveCoupon {
        code,
        at: state.store.clock().now(),
    });
    run(&state, &meta, cart_id, command).await
}

async fn set_shipping_address(
    CustomerOrStaff(principal): CustomerOrStaff,
    State(state): State<AppState>,
    meta: CommandMeta,
    Path(cart_id): Path<String>,
    ApiJson(body): ApiJson<AddressBody>,
) -> Result<CommandReply, Problem> {
    let cart_id = path_uuid(&cart_id)?;
    check_address(&body.address)?;
    owned::<Cart>(&state, &principal, cart_id).await?;
    let command = CartCommand::SetShippingAddress(SetShippingAddress {
        address: body.address,
        at: state.store.clock().now(),
    });
    run(&state, &meta, cart_id, command).await
}

async fn set_shipping_method(
    CustomerOrStaff(principal): CustomerOrStaff,
    State(state): State<AppState>,
    meta: CommandMeta,
    Path(cart_id): Path<String>,
    ApiJson(body): ApiJson<ShippingMethodBody>,
) -> Result<CommandReply, Problem> {
    let cart_id = path_uuid(&cart_id)?;
    if body.code.is_empty() || body.code.len() > MAX_METHOD_CODE {
        return Err(invalid_body(format!(
            "a shipping method code has 1 to {MAX_METHOD_CODE} characters"
        )));
    }
    let currency = cart_currency(&state, &principal, cart_id).await?;
    let method = state.commands.shipping_method(&body.code, currency).await?;
    let command = CartCommand::SetShippingMethod(SetShippingMethod {
        method,
        at: state.store.clock().now(),
    });
    run(&state, &meta, cart_id, command).await
}

async fn set_loyalty_points(
    CustomerOrStaff(principal): CustomerOrStaff,
    State(state): State<AppState>,
    meta: CommandMeta,
    Path(cart_id): Path<String>,
    ApiJson(body): ApiJson<LoyaltyPointsBody>,
) -> Result<CommandReply, Problem> {
    let cart_id = path_uuid(&cart_id)?;
    if body.points > MAX_POINTS {
        return Err(invalid_body(format!(
            "at most {MAX_POINTS} points can be redeemed"
        )));
    }
    let cart = owned::<Cart>(&state, &principal, cart_id).await?.state;
    let currency = cart
        .currency
        .ok_or_else(|| not_found::<Cart>(&cart_id.to_string()))?;
    // Clearing needs no point value: a shop without loyalty values can still clear.
    let value = if body.points == 0 {
        Money::zero(currency)
    } else {
        if let Some(customer) = cart.customer_id {
            check_balance(&state, customer, body.points).await?;
        }
        state.commands.points_value(body.points, currency).await?
    };
    let command = CartCommand::SetLoyaltyPoints(SetLoyaltyPoints {
        points: body.points,
        value,
        at: state.store.clock().now(),
    });
    run(&state, &meta, cart_id, command).await
}

/// Refuses points the customer does not have now. Advisory only: the balance can change
/// before checkout, where holding the points is the real guard; this catches the typo
/// and the customer without an account while they are still at the cart.
async fn check_balance(state: &AppState, customer: CustomerId, points: u64) -> Result<(), Problem> {
    let refusal = match state
        .commands
        .load::<LoyaltyAccount>(&customer.to_string())
        .await?
    {
        None => LoyaltyError::NotEnrolled,
        Some(account) if account.state.balance < points => LoyaltyError::InsufficientPoints {
            requested: points,
            available: account.state.balance,
        },
        Some(_) => return Ok(()),
    };
    Err(CommandError::Domain(DomainError::from(refusal)).into())
}

/// Checks the cart out with a payment method: one append to the cart, whose event the
/// checkout saga places the order from (a crash after the checkout loses nothing). The
/// new order's id is derived from the cart id, so a retried checkout (with or without the
/// same `Idempotency-Key`) names the same order.
async fn check_out(
    CustomerOrStaff(principal): CustomerOrStaff,
    State(state): State<AppState>,
    meta: CommandMeta,
    Path(cart_id): Path<String>,
    raw: Bytes,
) -> Result<Response, Problem> {
    let cart_id = path_uuid(&cart_id)?;
    let body = checkout_body(&raw)?;
    owned::<Cart>(&state, &principal, cart_id).await?;
    let order_id = checkout_order_id(cart_id);
    let command = CartCommand::CheckOutWithPayment(CheckOutWithPayment {
        order_id,
        tax_rates: state.commands.tax_rates().await?,
        payment: CheckoutPayment {
            method_token: body.payment_method_token,
            billing_address: body.billing_address,
        },
        at: state.store.clock().now(),
    });
    let reply = run(&state, &meta, cart_id, command).await?;
    let version = reply.body.version;
    let body = CheckoutReplyBody {
        reply: reply.body,
        order_id,
    };
    Ok(with_etag(StatusCode::OK, version, body))
}

/// The checkout body: empty means no payment method; otherwise JSON within bounds.
fn checkout_body(raw: &[u8]) -> Result<CheckoutBody, Problem> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Ok(CheckoutBody::default());
    }
    let body: CheckoutBody = serde_json::from_slice(raw).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            row::MALFORMED_JSON.problem(e.to_string())
        } else {
            row::INVALID_BODY.problem(e.to_string())
        }
    })?;
    if let Some(token) = &body.payment_method_token {
        if token.trim().is_empty()
            || token.len() > MAX_PAYMENT_TOKEN
            || token.chars().any(char::is_control)
        {
            return Err(invalid_body(format!(
                "payment_method_token has 1 to {MAX_PAYMENT_TOKEN} printable characters"
            )));
        }
    }
    if let Some(address) = &body.billing_address {
        check_address(address)?;
    }
    Ok(body)
}

/// The id of the order cart `cart_id` checks out into.
pub fn checkout_order_id(cart_id: Uuid) -> OrderId {
    OrderId::from_uuid(CommandContext::derived_id("checkout", &cart_id.to_string()))
}

/// Runs a cart command on an existing cart and answers `200`.
async fn run(
    state: &AppState,
    meta: &CommandMeta,
    cart_id: Uuid,
    command: CartCommand,
) -> Result<CommandReply, Problem> {
    let done = state
        .commands
        .execute::<Cart>(&meta.context(), &cart_id.to_string(), command)
        .await?;
    Ok(CommandReply::ok(&done))
}

/// The currency of a cart the caller may act on.
async fn cart_currency(
    state: &AppState,
    principal: &Principal,
    cart_id: Uuid,
) -> Result<Currency, Problem> {
    let cart = owned::<Cart>(state, principal, cart_id).await?;
    cart.state
        .currency
        .ok_or_else(|| not_found::<Cart>(&cart_id.to_string()))
}

fn line_quantity(quantity: u32) -> Result<Quantity, Problem> {
    if quantity == 0 || quantity > DEFAULT_MAX_QUANTITY_PER_LINE {
        return Err(invalid_body(format!(
            "a quantity must be 1 to {DEFAULT_MAX_QUANTITY_PER_LINE}, got {quantity}"
        )));
    }
    Ok(Quantity::new(quantity))
}

// ---------------------------------------------------------------------------------------
// Helpers shared by the customer-facing route modules
// ---------------------------------------------------------------------------------------

/// The customer a creation acts for: a customer acts for themselves (a `customer_id`
/// naming anyone else is refused), staff must name one.
pub(super) fn acting_customer(
    principal: &Principal,
    requested: Option<CustomerId>,
) -> Result<CustomerId, Problem> {
    match (principal.customer_id(), requested) {
        (Some(own), None) => Ok(own),
        (Some(own), Some(other)) if own == other => Ok(own),
        (Some(_), Some(_)) => Err(row::FORBIDDEN.problem("a customer acts only for themselves")),
        (None, Some(customer)) => Ok(customer),
        (None, None) => Err(invalid_body(
            "staff must name the customer in `customer_id`",
        )),
    }
}

/// The 404 of a stream that is missing or not the caller's: the same problem the
/// command layer answers, so the two cannot be told apart.
pub(super) fn not_found<A: EventSourced>(id: &str) -> Problem {
    CommandError::NotFound {
        stream: StreamRef::new(A::STREAM_TYPE, id),
    }
    .into()
}

/// The state of stream `id` when it exists and the caller may see it; otherwise the
/// same 404 for a missing stream and for another customer's.
pub(super) async fn owned<A: EventSourced>(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
) -> Result<Loaded<A>, Problem> {
    let key = id.to_string();
    match state.commands.load::<A>(&key).await? {
        Some(loaded) if visible(principal, loaded.state.owner()) => Ok(loaded),
        _ => Err(not_found::<A>(&key)),
    }
}

/// Staff see every stream; a customer only their own.
pub(super) fn visible(principal: &Principal, owner: Option<CustomerId>) -> bool {
    match principal.customer_id() {
        Some(customer) => owner == Some(customer),
        None => principal.is_staff(),
    }
}

/// Bounds on an address: every field 1-200 characters (the optional ones 0-200), and an
/// ISO 3166-1 alpha-2 country code.
pub(super) fn check_address(address: &Address) -> Result<(), Problem> {
    let required = [
        ("name", &address.name),
        ("line1", &address.line1),
        ("city", &address.city),
        ("postal_code", &address.postal_code),
    ];
    for (field, value) in required {
        if value.trim().is_empty() || value.chars().count() > MAX_ADDRESS_FIELD {
            return Err(invalid_body(format!(
                "address.{field} must have 1 to {MAX_ADDRESS_FIELD} characters"
            )));
        }
    }
    let optional = [("line2", &address.line2), ("region", &address.region)];
    for (field, value) in optional {
        if value
            .as_ref()
            .is_some_and(|v| v.chars().count() > MAX_ADDRESS_FIELD)
        {
            return Err(invalid_body(format!(
                "address.{field} has at most {MAX_ADDRESS_FIELD} characters"
            )));
        }
    }
    if CountryCode::parse(&address.country.0).is_none() {
        return Err(invalid_body(
            "address.country must be an ISO 3166-1 alpha-2 code such as `DE`",
        ));
    }
    Ok(())
}

/// A JSON body with `ETag: "<version>"`.
pub(super) fn with_etag<T: Serialize>(status: StatusCode, version: i64, body: T) -> Response {
    (status, [etag(version)], Json(body)).into_response()
}

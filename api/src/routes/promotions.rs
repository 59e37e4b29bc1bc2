//! Promotion routes (staff): create a promotion with all its terms, deactivate it, read
//! it back with its current uses.
//!
//! A promotion's stream id is its normalised code (trimmed, upper-case), so `summer10`
//! and `SUMMER10` name one promotion; its promotion id is the creating request's command
//! id. Reserving and releasing redemptions are steps of the order saga: no routes.
//!
//! Amounts inside the terms are money objects `{"amount": 500, "currency": "EUR"}`
//! (a promotion is not priced per currency like a product; the domain requires all its
//! amounts to share one currency).

use aggregates::promotion::{
    CreatePromotion, DiscountKind, Promotion, PromotionCode, PromotionCommand, PromotionTarget,
    PromotionTerms,
};
use aggregates::{EventSourced, Money, PromotionId, Sku};
use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue};
use axum::Json;
use chrono::{DateTime, Utc};
use infra::command::CommandError;
use infra::StreamRef;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::catalogue::{amount_in, check_text, MAX_NAME};
use super::input::{etag, invalid_body, path_coupon_code};
use crate::http::command::{CommandMeta, CommandReply, CommandReplyBody};
use crate::http::json::ApiJson;
use crate::http::openapi::{ApiRouter, Operation};
use crate::http::principal::{Role, Staff};
use crate::http::problem::Problem;
use crate::http::AppState;

/// Most tiers of a tiered promotion.
pub const MAX_TIERS: usize = 20;
/// Most targeted SKUs.
pub const MAX_TARGET_SKUS: usize = 1_000;
/// Most targeted categories.
pub const MAX_TARGET_CATEGORIES: usize = 100;

const TAG: &str = "promotions";
const STAFF: &[Role] = &[Role::Staff, Role::Admin];

/// A new promotion and all its terms.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePromotionBody {
    /// The coupon code customers type, normalised (trimmed, upper-cased): 1-32 of
    /// `A-Z 0-9 - _`. Also the promotion's stream id.
    pub code: PromotionCode,
    /// What it gives: `{"type": "percentage", "basis_points": 1000}`,
    /// `{"type": "fixed_amount", "amount": {"amount": 500, "currency": "EUR"}}`,
    /// `{"type": "free_shipping"}`, `{"type": "buy_x_get_y", "buy": 2, "get": 1}` or
    /// `{"type": "tiered", "tiers": [...]}`.
    pub kind: DiscountKind,
    /// The cart subtotal needed for it to apply.
    #[serde(default)]
    pub minimum_subtotal: Option<Money>,
    /// First instant it applies; now when absent.
    #[serde(default)]
    pub starts_at: Option<DateTime<Utc>>,
    /// First instant it no longer applies; open-ended when absent.
    #[serde(default)]
    pub ends_at: Option<DateTime<Utc>>,
    /// Orders that may redeem it in total; unlimited when absent.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub usage_limit: Option<u32>,
    /// Orders one customer may redeem it for; unlimited when absent.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub per_customer_limit: Option<u32>,
    /// May be combined with other coupons in one cart.
    #[serde(default)]
    pub stackable: bool,
    /// The lines it applies to; the whole cart when absent or empty.
    #[serde(default)]
    pub target: TargetBody,
}

/// Which cart lines a promotion applies to.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetBody {
    #[serde(default)]
    pub skus: Vec<Sku>,
    /// Category paths; `apparel` also targets `apparel/t-shirts`.
    #[serde(default)]
    pub categories: Vec<String>,
}

/// A promotion as staff see it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PromotionView {
    pub code: PromotionCode,
    pub terms: PromotionTerms,
    /// Redemptions currently held by orders.
    pub uses: u32,
    pub deactivated: bool,
    /// The promotion stream's version (also the `ETag`).
    pub version: i64,
}

/// The promotion routes.
pub fn router() -> ApiRouter {
    ApiRouter::new()
        .route(
            Operation::post("/promotions")
                .summary("Create a promotion")
                .description(
                    "The normalised code is the stream id; the promotion id is derived from \
                     the `Idempotency-Key`.",
                )
                .tag(TAG)
                .roles(STAFF)
                .command()
                .body::<CreatePromotionBody>()
                .reply::<CommandReplyBody>(201)
                .problems(&[
                    "promotion_already_exists",
                    "coupon_code_invalid",
                    "promotion_percentage_invalid",
                    "promotion_amount_not_positive",
                    "promotion_mixed_currencies",
                    "promotion_buy_x_get_y_invalid",
                    "promotion_no_tiers",
                    "promotion_duplicate_tier",
                    "promotion_validity_empty",
                    "promotion_usage_limit_zero",
                    "promotion_target_category_empty",
                ]),
            axum::routing::post(create_promotion),
        )
        .route(
            Operation::post("/promotions/{code}/deactivate")
                .summary("Deactivate a promotion")
                .description("Carts can no longer apply it; held redemptions stay.")
                .tag(TAG)
                .roles(STAFF)
                .command()
                .path_param("code", "The coupon code (any case)")
                .reply::<CommandReplyBody>(200)
                .problems(&["invalid_id", "promotion_not_found", "promotion_deactivated"]),
            axum::routing::post(deactivate),
        )
        .route(
            Operation::get("/promotions/{code}")
                .summary("Read a promotion")
                .description("Terms, current uses and whether it is deactivated.")
                .tag(TAG)
                .roles(STAFF)
                .path_param("code", "The coupon code (any case)")
                .reply::<PromotionView>(200)
                .problems(&["invalid_id", "not_found"]),
            axum::routing::get(get_promotion),
        )
}

async fn create_promotion(
    Staff(_): Staff,
    State(state): State<AppState>,
    meta: CommandMeta,
    ApiJson(body): ApiJson<CreatePromotionBody>,
) -> Result<CommandReply, Problem> {
    check_amounts(&body)?;
    if body.target.skus.len() > MAX_TARGET_SKUS {
        return Err(invalid_body(format!(
            "at most {MAX_TARGET_SKUS} targeted SKUs"
        )));
    }
    if body.target.categories.len() > MAX_TARGET_CATEGORIES {
        return Err(invalid_body(format!(
            "at most {MAX_TARGET_CATEGORIES} targeted categories"
        )));
    }
    for category in &body.target.categories {
        // Empty categories are left to the domain rule that names them.
        check_text("category", category, 0, MAX_NAME)?;
    }
    let ctx = meta.context();
    let now = state.store.clock().now();
    let code = body.code;
    let command = PromotionCommand::CreatePromotion(CreatePromotion {
        promotion_id: PromotionId::from_uuid(ctx.command_id),
        code: code.as_str().to_string(),
        kind: body.kind,
        minimum_subtotal: body.minimum_subtotal,
        starts_at: body.starts_at.unwrap_or(now),
        ends_at: body.ends_at,
        usage_limit: body.usage_limit,
        per_customer_limit: body.per_customer_limit,
        stackable: body.stackable,
        target: PromotionTarget {
            skus: body.target.skus.into_iter().collect(),
            categories: body.target.categories.into_iter().collect(),
        },
        at: now,
    });
    let done = state
        .commands
        .execute::<Promotion>(&ctx, code.as_str(), command)
        .await?;
    Ok(CommandReply::created(&done))
}

async fn deactivate(
    Staff(_): Staff,
    State(state): State<AppState>,
    meta: CommandMeta,
    Path(code): Path<String>,
) -> Result<CommandReply, Problem> {
    let code = parse_code(&code)?;
    let command = PromotionCommand::DeactivatePromotion {
        at: state.store.clock().now(),
    };
    let done = state
        .commands
        .execute::<Promotion>(&meta.context(), code.as_str(), command)
        .await?;
    Ok(CommandReply::ok(&done))
}

async fn get_promotion(
    Staff(_): Staff,
    State(state): State<AppState>,
    Path(code): Path<String>,
) -> Result<([(HeaderName, HeaderValue); 1], Json<PromotionView>), Problem> {
    let code = parse_code(&code)?;
    let loaded = state.commands.load::<Promotion>(code.as_str()).await?;
    let Some((loaded, terms)) = loaded.and_then(|l| {
        let terms = l.state.terms.clone()?;
        Some((l, terms))
    }) else {
        let stream = StreamRef::new(Promotion::STREAM_TYPE, code.as_str());
        return Err(CommandError::NotFound { stream }.into());
    };
    let view = PromotionView {
        code,
        terms,
        uses: loaded.state.uses(),
        deactivated: loaded.state.deactivated,
        version: loaded.version,
    };
    Ok(([etag(view.version)], Json(view)))
}

fn parse_code(raw: &str) -> Result<PromotionCode, Problem> {
    path_coupon_code(raw)
}

/// Every amount of the terms within the API's bounds; the domain checks the rest
/// (positive, one currency, sane tiers).
fn check_amounts(body: &CreatePromotionBody) -> Result<(), Problem> {
    let mut amounts: Vec<Money> = body.minimum_subtotal.into_iter().collect();
    match &body.kind {
        DiscountKind::FixedAmount { amount } => amounts.push(*amount),
        DiscountKind::Tiered { tiers } => {
            if tiers.len() > MAX_TIERS {
                return Err(invalid_body(format!("at most {MAX_TIERS} tiers")));
            }
            for tier in tiers {
                amounts.push(tier.threshold);
                if let aggregates::promotion::TierReward::FixedAmount { amount } = &tier.reward {
                    amounts.push(*amount);
                }
            }
        }
        DiscountKind::Percentage { .. }
        | DiscountKind::FreeShipping
        | DiscountKind::BuyXGetY { .. } => {}
    }
    for money in amounts {
        amount_in(money.amount, money.currency)?;
    }
    Ok(())
}

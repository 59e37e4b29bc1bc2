//! Loyalty routes: a customer enrols and reads their own account (`/loyalty/account`);
//! staff read any account and award campaign bonuses (`/loyalty/accounts/{customer_id}`).
//!
//! A loyalty account's stream id is its customer's id, and so is the account id. Its
//! referral code is the customer id in upper-case hex: unique without a lookup table,
//! and the reward saga finds the referrer's account straight from the code a referred
//! customer enrolled with. Earning, holds, reversals, expiry and tiers are driven by
//! sagas, not by routes.

use aggregates::loyalty::{
    AwardCampaignBonus, EnrollAccount, HoldStatus, LoyaltyAccount, LoyaltyCommand, Tier,
};
use aggregates::{Currency, CustomerId, LoyaltyAccountId, OrderId, PromotionId};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use infra::command::Loaded;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::carts::{acting_customer, owned, with_etag};
use super::input::{invalid_body, path_uuid};
use crate::http::command::{CommandMeta, CommandReply, CommandReplyBody};
use crate::http::errors::{self, row};
use crate::http::json::ApiJson;
use crate::http::principal::{Caller, CustomerOrStaff, Principal, Role, Staff};
use crate::http::problem::Problem;
use crate::http::{ApiRouter, AppState, Operation};

/// Most points one campaign bonus may award.
const MAX_BONUS_POINTS: u64 = 1_000_000;
/// Longest referral code (the domain's rule).
const MAX_REFERRAL_CODE: usize = 32;
/// The OpenAPI tag of the loyalty routes.
const TAG: &str = "loyalty";

/// The loyalty routes.
pub fn router() -> ApiRouter {
    let staff = &[Role::Staff, Role::Admin];
    let customer_id = ("customer_id", "The customer's UUID (the account's id).");
    ApiRouter::new()
        .route(
            Operation::post("/loyalty/account")
                .summary("Enrol in the loyalty programme")
                .description("A customer enrols themselves; staff name the customer in `customer_id`. `referred_by` is the referral code of the customer who referred this one.")
                .tag(TAG)
                .roles(&[Role::Customer, Role::Staff, Role::Admin])
                .command()
                .body::<EnrollBody>()
                .reply::<CommandReplyBody>(201)
                .problems(errors::LOYALTY_CODES),
            post(enroll),
        )
        .route(
            Operation::get("/loyalty/account")
                .summary("The caller's own loyalty account")
                .tag(TAG)
                .roles(&[Role::Customer])
                .reply::<LoyaltyAccountBody>(200)
                .problems(&["not_found"]),
            get(own_account),
        )
        .route(
            Operation::get("/loyalty/accounts/{customer_id}")
                .summary("A customer's loyalty account")
                .tag(TAG)
                .roles(staff)
                .path_param(customer_id.0, customer_id.1)
                .reply::<LoyaltyAccountBody>(200)
                .problems(&["invalid_id", "not_found"]),
            get(account),
        )
        .route(
            Operation::post("/loyalty/accounts/{customer_id}/bonus")
                .summary("Award a campaign's bonus points (once per campaign)")
                .tag(TAG)
                .roles(staff)
                .command()
                .path_param(customer_id.0, customer_id.1)
                .body::<BonusBody>()
                .reply::<CommandReplyBody>(200)
                .problems(&["invalid_id", "not_found"])
                .problems(errors::LOYALTY_CODES),
            post(award_bonus),
        )
}

// ---------------------------------------------------------------------------------------
// Request and response bodies
// ---------------------------------------------------------------------------------------

/// `POST /loyalty/account`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollBody {
    /// Spend and earnings are kept in this currency.
    pub currency: Currency,
    /// The referral code of the customer who referred this one.
    #[serde(default)]
    #[schemars(length(min = 4, max = 32), regex(pattern = r"^[A-Z0-9-]+$"))]
    pub referred_by: Option<String>,
    /// Whose account: required for staff, and for a customer (if given) their own id.
    #[serde(default)]
    pub customer_id: Option<CustomerId>,
}

/// `POST /loyalty/accounts/{customer_id}/bonus`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BonusBody {
    /// The campaign (promotion) the bonus belongs to; awarded once per campaign.
    pub campaign_id: PromotionId,
    #[schemars(range(min = 1, max = 1_000_000))]
    pub points: u64,
}

/// Points credited together and expiring together.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct LotBody {
    pub points: u64,
    /// Not yet spent, expired or reversed.
    pub remaining: u64,
    pub expires_at: DateTime<Utc>,
}

/// Points held for an order being checked out.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct HoldBody {
    pub order_id: OrderId,
    pub points: u64,
}

/// A loyalty account.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct LoyaltyAccountBody {
    pub customer_id: CustomerId,
    pub currency: Currency,
    pub tier: Tier,
    /// Points available now.
    pub balance: u64,
    /// This customer's code to share with friends.
    pub referral_code: String,
    pub referred_by: Option<String>,
    /// Lots with points left, soonest to expire first.
    pub lots: Vec<LotBody>,
    /// Points held for orders not yet confirmed or cancelled.
    pub holds: Vec<HoldBody>,
    /// The stream version.
    pub version: i64,
}

// ---------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------

async fn enroll(
    CustomerOrStaff(principal): CustomerOrStaff,
    State(state): State<AppState>,
    meta: CommandMeta,
    ApiJson(body): ApiJson<EnrollBody>,
) -> Result<CommandReply, Problem> {
    let customer_id = acting_customer(&principal, body.customer_id)?;
    let referred_by = body
        .referred_by
        .map(|code| {
            let code = code.trim().to_ascii_uppercase();
            if code.len() > MAX_REFERRAL_CODE {
                Err(invalid_body(format!(
                    "a referral code has at most {MAX_REFERRAL_CODE} characters"
                )))
            } else {
                Ok(code)
            }
        })
        .transpose()?;
    let command = LoyaltyCommand::EnrollAccount(EnrollAccount {
        account_id: LoyaltyAccountId::from_uuid(customer_id.0),
        customer_id,
        referral_code: referral_code(customer_id),
        referred_by,
        currency: body.currency,
        at: state.store.clock().now(),
    });
    let done = state
        .commands
        .execute::<LoyaltyAccount>(&meta.context(), &customer_id.to_string(), command)
        .await?;
    Ok(CommandReply::created(&done))
}

async fn own_account(
    Caller(principal): Caller,
    State(state): State<AppState>,
) -> Result<Response, Problem> {
    let Some(customer_id) = principal.customer_id() else {
        return Err(row::FORBIDDEN.problem(
            "only a customer has an own account; staff use /loyalty/accounts/{customer_id}",
        ));
    };
    account_body(&state, &principal, customer_id).await
}

async fn account(
    Staff(principal): Staff,
    State(state): State<AppState>,
    Path(customer_id): Path<String>,
) -> Result<Response, Problem> {
    let customer_id = CustomerId::from_uuid(path_uuid(&customer_id)?);
    account_body(&state, &principal, customer_id).await
}

async fn award_bonus(
    Staff(principal): Staff,
    State(state): State<AppState>,
    meta: CommandMeta,
    Path(customer_id): Path<String>,
    ApiJson(body): ApiJson<BonusBody>,
) -> Result<CommandReply, Problem> {
    let customer_id = path_uuid(&customer_id)?;
    if body.points == 0 || body.points > MAX_BONUS_POINTS {
        return Err(invalid_body(format!(
            "a bonus is 1 to {MAX_BONUS_POINTS} points"
        )));
    }
    // A bonus for someone not enrolled is 404, not the domain's "not enrolled".
    owned::<LoyaltyAccount>(&state, &principal, customer_id).await?;
    let command = LoyaltyCommand::AwardCampaignBonus(AwardCampaignBonus {
        campaign_id: body.campaign_id,
        points: body.points,
        at: state.store.clock().now(),
    });
    let done = state
        .commands
        .execute::<LoyaltyAccount>(&meta.context(), &customer_id.to_string(), command)
        .await?;
    Ok(CommandReply::ok(&done))
}

/// The referral code of `customer`'s account.
pub fn referral_code(customer: CustomerId) -> String {
    customer.0.simple().to_string().to_ascii_uppercase()
}

async fn account_body(
    state: &AppState,
    principal: &Principal,
    customer_id: CustomerId,
) -> Result<Response, Problem> {
    let Loaded {
        state: account,
        version,
    } = owned::<LoyaltyAccount>(state, principal, customer_id.0).await?;
    let Some(currency) = account.currency else {
        return Err(super::carts::not_found::<LoyaltyAccount>(
            &customer_id.to_string(),
        ));
    };
    let mut lots: Vec<LotBody> = account
        .lots
        .iter()
        .filter(|l| !l.expired && l.remaining > 0)
        .map(|l| LotBody {
            points: l.points,
            remaining: l.remaining,
            expires_at: l.expires_at,
        })
        .collect();
    lots.sort_by_key(|l| l.expires_at);
    let holds = account
        .holds
        .iter()
        .filter(|(_, h)| h.status == HoldStatus::Held)
        .map(|(order_id, h)| HoldBody {
            order_id: *order_id,
            points: h.points,
        })
        .collect();
    let body = LoyaltyAccountBody {
        customer_id,
        currency,
        tier: account.tier,
        balance: account.balance,
        referral_code: account.referral_code,
        referred_by: account.referred_by,
        lots,
        holds,
        version,
    };
    Ok(with_etag(StatusCode::OK, version, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referral_codes_are_valid_domain_codes_and_name_their_customer() {
        let customer = CustomerId::from_uuid(uuid::Uuid::now_v7());
        let code = referral_code(customer);
        assert_eq!(code.len(), 32);
        assert!(code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
        let back: uuid::Uuid = code.to_ascii_lowercase().parse().expect("hex uuid");
        assert_eq!(back, customer.0);
    }
}

//! The calling customer's loyalty account from the `loyalty_accounts` projection, with
//! the points that expire within 30 days (a query over the account's unexpired lots at
//! the clock's now, so the view itself needs no clock).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use schemars::JsonSchema;
use serde::Serialize;

use super::consistency::{internal, reach, Fresh, ReadAt};
use super::snapshot::in_snapshot;
use crate::http::errors::row;
use crate::http::principal::CustomerOrStaff;
use crate::http::problem::Problem;
use crate::http::AppState;

/// The projection this route reads.
pub const LOYALTY: &str = "loyalty_accounts";
/// How far ahead `expiring_soon` looks.
const EXPIRY_HORIZON_DAYS: i64 = 30;

/// Points credited together that expire together, with what remains of them.
#[derive(Debug, Serialize, JsonSchema, sqlx::FromRow)]
pub struct ExpiringLot {
    pub remaining: i64,
    pub expires_at: DateTime<Utc>,
}

/// `GET /me/loyalty`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MyLoyaltyBody {
    pub account_id: String,
    pub customer_id: String,
    /// `bronze`, `silver`, `gold` or `platinum`.
    pub tier: String,
    pub balance: i64,
    pub lifetime_points: i64,
    pub redeemed_points: i64,
    pub expired_points: i64,
    /// The currency the account's points are valued in.
    pub currency: String,
    pub referral_code: String,
    pub referred_by: Option<String>,
    /// Points that expire within the next 30 days unless redeemed.
    pub points_expiring_within_30_days: i64,
    /// Those points lot by lot, soonest first.
    pub expiring_soon: Vec<ExpiringLot>,
    pub enrolled_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct AccountRow {
    customer_id: String,
    account_id: String,
    currency: String,
    tier: String,
    balance: i64,
    lifetime_points: i64,
    redeemed_points: i64,
    expired_points: i64,
    referral_code: String,
    referred_by: Option<String>,
    enrolled_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// `GET /me/loyalty`: `404 not_found` until the customer has enrolled.
pub async fn my_loyalty(
    CustomerOrStaff(principal): CustomerOrStaff,
    State(state): State<AppState>,
    ReadAt(wanted): ReadAt,
) -> Result<Response, Problem> {
    let customer = super::me(&principal)?.to_string();
    let position = reach(&state, LOYALTY, wanted).await?;
    let now = state.store.clock().now();
    let horizon = now + Duration::days(EXPIRY_HORIZON_DAYS);
    let read = in_snapshot!(state, tx => {
        let account: Option<AccountRow> =
            sqlx::query_as("SELECT * FROM loyalty_accounts WHERE customer_id = $1")
                .bind(&customer)
                .fetch_optional(&mut *tx)
                .await?;
        let expiring_soon: Vec<ExpiringLot> = sqlx::query_as(
            "SELECT remaining, expires_at FROM loyalty_lots \
             WHERE customer_id = $1 AND NOT expired AND remaining > 0 \
               AND expires_at > $2 AND expires_at <= $3 \
             ORDER BY expires_at, lot",
        )
        .bind(&customer)
        .bind(now)
        .bind(horizon)
        .fetch_all(&mut *tx)
        .await?;
        (account, expiring_soon)
    });
    let (account, expiring_soon) = read.map_err(internal)?;
    let Some(a) = account else {
        return Err(row::NOT_FOUND.problem("you have no loyalty account"));
    };
    let body = MyLoyaltyBody {
        points_expiring_within_30_days: expiring_soon.iter().map(|l| l.remaining).sum(),
        expiring_soon,
        account_id: a.account_id,
        customer_id: a.customer_id,
        tier: a.tier,
        balance: a.balance,
        lifetime_points: a.lifetime_points,
        redeemed_points: a.redeemed_points,
        expired_points: a.expired_points,
        currency: a.currency,
        referral_code: a.referral_code,
        referred_by: a.referred_by,
        enrolled_at: a.enrolled_at,
        updated_at: a.updated_at,
    };
    Ok(Fresh { position, body }.into_response())
}

//! Who is calling: the authenticated principal of a request and the role extractors
//! route handlers take as arguments.
//!
//! | extractor | admits |
//! |---|---|
//! | [`Caller`] | any authenticated principal |
//! | [`CustomerOrStaff`] | customers (scoped to their own streams), staff and admins |
//! | [`Staff`] | staff and admins |
//! | [`AdminRole`] | admins |
//! | [`Service`] | service principals (payment provider / carrier callbacks) and admins |
//!
//! A missing or invalid credential is `401 unauthenticated`; a valid one without the
//! role is `403 forbidden`.

use aggregates::CustomerId;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};

use super::errors::row;
use super::problem::Problem;
use super::AppState;

/// The roles of the API: the `role` claim of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A shopper, acting on their own carts, orders and loyalty account (`sub` is their
    /// customer id).
    Customer,
    /// Shop staff: catalogue, stock, promotions, fulfilment, any customer's streams.
    Staff,
    /// Everything staff may, plus the admin API. The configured admin tokens
    /// authenticate as this role.
    Admin,
    /// A machine caller: payment-provider and carrier callbacks.
    Service,
}

impl Role {
    /// The role's name in tokens and in actors (`staff`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Staff => "staff",
            Role::Admin => "admin",
            Role::Service => "service",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's subject (`sub`). For customers, their customer id.
    pub subject: String,
    /// The token's role.
    pub role: Role,
}

impl Principal {
    /// The customer id of a customer principal (`sub` must be a UUID).
    pub fn customer_id(&self) -> Option<CustomerId> {
        match self.role {
            Role::Customer => self.subject.parse().ok(),
            _ => None,
        }
    }

    /// `customer:<id>`, `staff:<sub>`, …: the actor stored on events.
    pub fn actor(&self) -> String {
        format!("{}:{}", self.role.as_str(), self.subject)
    }

    /// Whether the principal may use staff routes (staff or admin).
    pub fn is_staff(&self) -> bool {
        matches!(self.role, Role::Staff | Role::Admin)
    }
}

/// Any authenticated principal.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

/// A customer (acting on their own streams only) or staff/admin (acting on any).
#[derive(Debug, Clone)]
pub struct CustomerOrStaff(pub Principal);

/// Staff or admin.
#[derive(Debug, Clone)]
pub struct Staff(pub Principal);

/// Admin only.
#[derive(Debug, Clone)]
pub struct AdminRole(pub Principal);

/// A service principal (or admin).
#[derive(Debug, Clone)]
pub struct Service(pub Principal);

fn forbidden(need: &str) -> Problem {
    row::FORBIDDEN.problem(format!("this route needs the {need} role"))
}

/// The request's principal: the one the rate limiter already verified (kept in the
/// request's extensions so a token is verified once per request), else verified here.
async fn principal(parts: &mut Parts, state: &AppState) -> Result<Principal, Problem> {
    if let Some(p) = parts.extensions.get::<Principal>() {
        return Ok(p.clone());
    }
    let principal = state.auth.authenticate(&parts.headers)?;
    parts.extensions.insert(principal.clone());
    Ok(principal)
}

macro_rules! role_extractor {
    ($name:ident, $need:literal, |$p:ident| $admits:expr) => {
        impl FromRequestParts<AppState> for $name {
            type Rejection = Problem;

            async fn from_request_parts(
                parts: &mut Parts,
                state: &AppState,
            ) -> Result<Self, Self::Rejection> {
                let $p = principal(parts, state).await?;
                if $admits {
                    Ok(Self($p))
                } else {
                    Err(forbidden($need))
                }
            }
        }
    };
}

role_extractor!(Caller, "any", |p| {
    let _ = &p;
    true
});
role_extractor!(CustomerOrStaff, "customer or staff", |p| {
    (p.role == Role::Customer && p.customer_id().is_some()) || p.is_staff()
});
role_extractor!(Staff, "staff", |p| p.is_staff());
role_extractor!(AdminRole, "admin", |p| p.role == Role::Admin);
role_extractor!(Service, "service", |p| matches!(
    p.role,
    Role::Service | Role::Admin
));

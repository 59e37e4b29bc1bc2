//! The command and query routes of the domain, one module per area, each with its own
//! `router()`.
//!
//! Stream ids: a cart, order, payment or shipment by its UUID; a product and a stock
//! item by SKU; a promotion by its normalised code; a loyalty account by customer id.

use axum::Router;

use crate::http::AppState;

/// Every domain route.
pub fn router() -> Router<AppState> {
    Router::new()
}

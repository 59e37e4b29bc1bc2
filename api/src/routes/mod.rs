//! The command and query routes of the domain, one module per area, each with its own
//! `router()`.
//!
//! Stream ids: a cart, order, payment or shipment by its UUID; a product and a stock
//! item by SKU; a promotion by its normalised code; a loyalty account by customer id.

pub mod callbacks;
mod carts;
mod catalogue;
mod input;
mod loyalty;
mod orders;
mod payments;
mod promotions;
mod sagas;
mod search;
mod settings;
mod shipments;
mod stock;
mod streams;
pub(crate) mod views;

use crate::http::ApiRouter;

/// Every domain route.
pub fn router() -> ApiRouter {
    ApiRouter::new()
        .merge(carts::router())
        .merge(callbacks::router())
        .merge(orders::router())
        .merge(loyalty::router())
        .merge(catalogue::router())
        .merge(stock::router())
        .merge(promotions::router())
        .merge(shipments::router())
        .merge(payments::router())
        .merge(settings::router())
        .merge(streams::router())
        .merge(search::router())
        .merge(views::router())
        .merge(sagas::router())
}

//! The query side: routes that read the SQL views (docs/projections.md) and never an
//! aggregate's stream. The `GET` routes of single streams (`/carts/{cart_id}`, …) stay
//! the command side's reads, with the version `If-Match` needs; these answer lists,
//! joins and figures across streams.
//!
//! Each route reads one projection and takes part in read-your-writes
//! ([`consistency`]): `?min_position=P` or `Consistency-Position: P` makes it wait until
//! the view has applied the log up to `P`, and every answer says in
//! `Consistency-Position` how far the view it read had got.

mod carts;

pub mod consistency;
mod loyalty;
mod orders;
mod reports;
mod snapshot;
mod stock;

use aggregates::{Currency, CustomerId, Money};
use axum::routing::get;

use crate::http::errors::row;
use crate::http::principal::{Principal, Role};
use crate::http::problem::Problem;
use crate::http::{ApiRouter, Operation};
use consistency::MinPositionQuery;

pub use consistency::parse_wait;

/// The OpenAPI tag of the query routes.
const TAG: &str = "queries";

/// Problems every view route can answer: a bad position, one beyond the log, and a view
/// that did not get there in time.
const READ_PROBLEMS: &[&str] = &[
    "invalid_query",
    "invalid_consistency_position",
    "position_beyond_log",
    "view_behind",
];

/// How every view route describes read-your-writes in the document.
const READ_YOUR_WRITES: &str = "Reads a SQL view. `?min_position=P` or the header `Consistency-Position: P` (the `position` a command answered) waits until the view has applied the log up to `P`, else `504 view_behind` (a `P` beyond the end of the log: `400 position_beyond_log`); the answer's `Consistency-Position` header is the position the view had reached.";

/// The query routes.
pub fn router() -> ApiRouter {
    let customer = &[Role::Customer];
    let anyone = &[Role::Customer, Role::Staff, Role::Admin];
    let staff = &[Role::Staff, Role::Admin];
    let admin = &[Role::Admin];
    let order_id = ("order_id", "The order's UUID.");
    ApiRouter::new()
        .route(
            Operation::get("/me/orders")
                .summary("My orders, newest first, a page at a time")
                .description(READ_YOUR_WRITES)
                .tag(TAG)
                .roles(customer)
                .query::<orders::HistoryQuery>()
                .reply::<orders::OrderHistoryBody>(200)
                .problems(READ_PROBLEMS),
            get(orders::my_orders),
        )
        .route(
            Operation::get("/customers/{customer_id}/orders")
                .summary("A customer's orders, newest first, a page at a time")
                .description(READ_YOUR_WRITES)
                .tag(TAG)
                .roles(staff)
                .path_param("customer_id", "The customer's UUID.")
                .query::<orders::HistoryQuery>()
                .reply::<orders::OrderHistoryBody>(200)
                .problems(READ_PROBLEMS)
                .problems(&["invalid_id"]),
            get(orders::customer_orders),
        )
        .route(
            Operation::get("/me/orders/{order_id}")
                .summary("One of my orders with its lines and shipments")
                .description(READ_YOUR_WRITES)
                .tag(TAG)
                .roles(customer)
                .path_param(order_id.0, order_id.1)
                .query::<MinPositionQuery>()
                .reply::<orders::OrderSummaryBody>(200)
                .problems(READ_PROBLEMS)
                .problems(&["invalid_id", "not_found"]),
            get(orders::order_summary),
        )
        .route(
            Operation::get("/views/orders/{order_id}")
                .summary("An order with its lines and shipments, from the order view")
                .description(READ_YOUR_WRITES)
                .tag(TAG)
                .roles(anyone)
                .path_param(order_id.0, order_id.1)
                .query::<MinPositionQuery>()
                .reply::<orders::OrderSummaryBody>(200)
                .problems(READ_PROBLEMS)
                .problems(&["invalid_id", "not_found"]),
            get(orders::order_summary),
        )
        .route(
            Operation::get("/orders/{order_id}/payments")
                .summary("An order's payments: amounts authorized, captured, refunded, fraud score")
                .description(READ_YOUR_WRITES)
                .tag(TAG)
                .roles(staff)
                .path_param(order_id.0, order_id.1)
                .query::<MinPositionQuery>()
                .reply::<orders::OrderPaymentsBody>(200)
                .problems(READ_PROBLEMS)
                .problems(&["invalid_id"]),
            get(orders::order_payments),
        )
        .route(
            Operation::get("/me/cart")
                .summary("My open cart with its lines and coupons")
                .description(READ_YOUR_WRITES)
                .tag(TAG)
                .roles(customer)
                .query::<MinPositionQuery>()
                .reply::<carts::MyCartBody>(200)
                .problems(READ_PROBLEMS)
                .problems(&["not_found"]),
            get(carts::my_cart),
        )
        .route(
            Operation::get("/stock-levels/{sku}")
                .summary("A SKU's stock per warehouse and in total, with the low-stock flag")
                .description(READ_YOUR_WRITES)
                .tag(TAG)
                .roles(staff)
                .path_param("sku", "The SKU.")
                .query::<MinPositionQuery>()
                .reply::<stock::StockLevelsBody>(200)
                .problems(READ_PROBLEMS)
                .problems(&["invalid_id", "not_found"]),
            get(stock::stock_levels),
        )
        .route(
            Operation::get("/me/loyalty")
                .summary("My loyalty account, with the points expiring within 30 days")
                .description(READ_YOUR_WRITES)
                .tag(TAG)
                .roles(customer)
                .query::<MinPositionQuery>()
                .reply::<loyalty::MyLoyaltyBody>(200)
                .problems(READ_PROBLEMS)
                .problems(&["not_found"]),
            get(loyalty::my_loyalty),
        )
        .route(
            Operation::get("/reports/sales")
                .summary("Orders, revenue, units, cancellations and refunds per day and currency")
                .description(READ_YOUR_WRITES)
                .tag(TAG)
                .roles(admin)
                .query::<reports::SalesQuery>()
                .reply::<reports::SalesReportBody>(200)
                .problems(READ_PROBLEMS),
            get(reports::sales),
        )
        .route(
            Operation::get("/reports/cohorts")
                .summary("Customers by the month of their first order, with repeat buyers")
                .description(READ_YOUR_WRITES)
                .tag(TAG)
                .roles(admin)
                .query::<reports::CohortsQuery>()
                .reply::<reports::CohortsBody>(200)
                .problems(READ_PROBLEMS),
            get(reports::cohorts),
        )
}

/// The calling customer's id: `/me/…` routes are the customer's own; staff read a
/// customer's data through the routes that name them.
fn me(principal: &Principal) -> Result<CustomerId, Problem> {
    principal.customer_id().ok_or_else(|| {
        row::FORBIDDEN.problem("`/me` routes are a customer's own; staff name the customer instead")
    })
}

/// `amount` minor units of the view row's `currency`. Views store only currencies
/// events carried, so a code that does not parse is a corrupt row.
fn money(amount: i64, currency: &str) -> Result<Money, Problem> {
    let currency: Currency = currency
        .parse()
        .map_err(|e| consistency::internal(format!("currency in a view row: {e}")))?;
    Ok(Money::new(amount, currency))
}

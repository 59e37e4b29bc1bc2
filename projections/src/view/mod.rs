//! The SQL views, one module per projection. Table shapes: infra/migrations/*/…_views.sql
//! and docs/projections.md.

pub mod carts;
pub mod catalog;
pub mod loyalty;
pub mod orders;
pub mod payments;
pub mod returns;
pub mod sales;
pub mod stock;

use aggregates::Money;
use serde::Serialize;

use crate::row::Change;

/// Writes `money` as `<column>` (minor units); the currency is a column of its own.
fn minor(change: Change, column: &'static str, money: &Money) -> Change {
    change.set(column, money.amount)
}

/// Nested data a view shows whole, as JSON text. Event payload types always serialize.
fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// Units in `quantity` as a column value.
fn units(quantity: aggregates::Quantity) -> i64 {
    i64::from(quantity.0)
}

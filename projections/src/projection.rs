//! What a SQL view is: a named, pure fold from typed events to row changes.

use crate::event::Event;
use crate::row::Change;

/// One SQL read model.
///
/// `apply` is deterministic (the same event always yields the same changes, whatever
/// the clock) and never reads a table, so a view can be rebuilt from position 0 and
/// equal what live processing built. It is not idempotent on its own (counters add):
/// the runtime's checkpoint guard applies each event exactly once per version.
pub trait Projection: Send + Sync + 'static {
    /// The stable name: checkpoint key, metric label, `commerce projections rebuild <name>`.
    fn name(&self) -> &'static str;

    /// Every table the fold writes; a rebuild builds and swaps them together.
    fn tables(&self) -> &'static [&'static str];

    /// Whether events of `stream_type` can change this view (others are not decoded for it).
    fn reads(&self, stream_type: &str) -> bool;

    /// The changes one event makes, appended to `out` (in order).
    fn apply(&self, event: &Event<'_>, out: &mut Vec<Change>);
}

/// Every SQL projection, in the order the runtime applies them.
pub fn all() -> &'static [&'static dyn Projection] {
    use crate::view::*;
    &[
        &orders::OrderSummaries,
        &carts::Carts,
        &stock::StockLevels,
        &catalog::ProductCatalog,
        &loyalty::LoyaltyAccounts,
        &payments::PaymentsLedger,
        &sales::Sales,
        &returns::Returns,
    ]
}

/// The projection called `name`.
pub fn by_name(name: &str) -> Option<&'static dyn Projection> {
    all().iter().copied().find(|p| p.name() == name)
}

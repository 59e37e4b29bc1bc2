//! Read models (see docs/architecture.md). Filled in by the projections issue.

pub mod search;

// SQL views: typed events folded into row changes (docs/projections.md).
pub mod event;
pub mod projection;
pub mod row;
pub mod view;

pub use event::{Event, ViewEvent};
pub use projection::{all, by_name, Projection};
pub use row::{Change, Op, Set, Value};

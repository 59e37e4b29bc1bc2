//! Read models (see docs/architecture.md). Filled in by the projections issue.

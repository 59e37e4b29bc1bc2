//! The consumer runtime: runs a [`Handler`] over a [`Feed`](crate::feed::Feed) with
//! progress, retries, dead letters and per-stream order.

mod handler;

pub use handler::{Handler, HandlerError, Ordering};

//! The `commerce` binary's library: configuration, the HTTP API and the commands
//! (`serve`, `migrate`, `verify`, `bench`, `dlq`). `main.rs` only parses and dispatches.

pub mod anchor;
pub mod bench;
pub mod cli;
pub mod dlq;
pub mod engine;
pub mod http;
pub mod migrate;
pub mod projections;
pub mod replay;
pub mod routes;
pub mod sagas;
pub mod seed;
pub mod telemetry;
pub mod token;
pub mod webhook_keys;
pub mod worker;
